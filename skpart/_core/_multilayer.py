"""Multilayer NMF: layer-wise SparseNMF pass and joint fine-tuning of the stack."""

import math
import time

import torch

from ._hals import n_inner_sweeps
from ._hoyer import cone_project, top_eigenvalue
from ._init import initialize_nmf
from ._nmf import fit_nmf, solve_codes
from ._operator import DataOperator, gram_half_sq_error
from ._stopping import ErrorPlateau
from ._updates import factor_update

#: Accelerated projected-gradient steps per inner layer (``H_l``, ``l >= 2``) and
#: fine-tuning sweep. A step costs ``k_l k_(l-1) (k_l + k_(l-1))`` operations,
#: nothing next to the two products with the data that a sweep pays once.
_INNER_STEPS = 20


def effective_atoms(layers):
    """Cumulative products ``[H_1, H_2 H_1, ..., H_L ... H_1]`` of the layers.

    Parameters
    ----------
    layers : list of Tensor
        ``H_l`` of shape ``(k_l, k_(l-1))``, with ``k_0 = n_features``.

    Returns
    -------
    list of Tensor
        Entry ``l`` has shape ``(k_l, n_features)``: the atoms of layer ``l``
        in input space.
    """
    out = [layers[0]]
    for H in layers[1:]:
        out.append(H @ out[-1])
    return out


def fit_layers(
    X,
    ranks,
    *,
    inits,
    solver="cd",
    max_iter=200,
    tol=1e-4,
    sparseness_codes=None,
    sparseness_components=None,
    generator=None,
    verbose=0,
):
    """Sequential (layer-wise) pass of a multilayer NMF.

    Layer 1 factorises ``X ~ W_1 H_1``; layer ``l`` factorises the codes of the
    layer before, ``W_(l-1) ~ W_l H_l`` (Cichocki and Zdunek, 2006). Each layer
    is one :func:`~skpart._core._nmf.fit_nmf` run from
    :func:`~skpart._core._init.initialize_nmf`.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
        Non-negative data, dense or sparse CSR.
    ranks : sequence of int
        ``(k_1, ..., k_L)``.
    inits : sequence of str
        Initialisation of every layer (already resolved, no ``None``).
    solver : {"cd", "mu"}, default="cd"
    max_iter : int, default=200
        Iteration cap of every layer.
    tol : float, default=1e-4
    sparseness_codes, sparseness_components : sequence of (float or None) or None
        Hoyer sparseness of the rows of every layer's ``W_l`` and ``H_l``
        (``None``: no constraint anywhere).
    generator : torch.Generator or None
        CPU generator for the initialisations and the solver.
    verbose : int, default=0

    Returns
    -------
    W : Tensor of shape (n_samples, k_L)
        Codes of the last layer.
    layers : list of Tensor
        ``H_l`` of shape ``(k_l, k_(l-1))``.
    n_iter : list of int
        Iterations of every layer's factorisation.
    converged : list of bool
        Whether the stopping rule ended every layer's factorisation.
    """
    n_layers = len(ranks)
    codes_targets = sparseness_codes or [None] * n_layers
    atoms_targets = sparseness_components or [None] * n_layers
    data, layers, n_iter, converged = X, [], [], []
    for idx, k in enumerate(ranks):
        W, H = initialize_nmf(data, k, inits[idx], generator=generator)
        if verbose:
            print(f"Layer {idx + 1}: {tuple(data.shape)} -> {k} components")
        W, H, it, done = fit_nmf(
            data,
            W,
            H,
            solver=solver,
            max_iter=max_iter,
            tol=tol,
            sparseness_W=codes_targets[idx],
            sparseness_H=atoms_targets[idx],
            generator=generator,
            verbose=verbose,
        )
        layers.append(H)
        n_iter.append(it)
        converged.append(done)
        data = W
    return W, layers, n_iter, converged


def _balance(Wt, layers):
    """Rescale the factors by powers of two, leaving ``W H_L ... H_1`` unchanged.

    Every ``H_l`` is divided by the power of two nearest to its root mean
    square row norm and the factor above it (``W`` last) multiplied by it.
    Powers of two make this exact, and a scalar per factor keeps every row's
    sparseness. It keeps the factors away from overflow and underflow: NMF
    updates let the scale drift between factors (the first layer of a deep
    stack grows by orders of magnitude while the codes shrink).

    Returns
    -------
    Wt : Tensor of shape (k_L, n_samples)
    layers : list of Tensor
    scale : 0-d Tensor
        The factor ``W`` was multiplied by.
    """
    layers = list(layers)
    scale = None
    for idx, H in enumerate(layers):
        rms = torch.linalg.vector_norm(H) / math.sqrt(H.shape[0])
        ok = (rms > 0) & torch.isfinite(rms)
        exponent = torch.round(torch.log2(torch.where(ok, rms, 1.0)))
        scale = torch.exp2(torch.where(ok, exponent, 0.0))
        layers[idx] = (H / scale).contiguous()
        if idx + 1 < len(layers):
            layers[idx + 1] = layers[idx + 1] * scale
    return Wt * scale, layers, scale


def _top_eigenvalue(G):
    """Largest eigenvalue of the symmetric PSD ``G`` with non-negative
    entries (1 for ``None``: identity; see
    :func:`~skpart._core._hoyer.top_eigenvalue`)."""
    if G is None:
        return 1.0
    return top_eigenvalue(G)


class TwoSidedQuadratic:
    """``f(F) = 0.5 <F, P F Q> - <N, F>``: ``0.5 ||X - A F B||_F^2`` up to a
    constant, with ``P = A^T A``, ``Q = B B^T`` and ``N = A^T X B^T``, over
    non-negative ``F`` (every row at Hoyer sparseness ``sparseness`` when it
    is not ``None``).

    Parameters
    ----------
    P : Tensor of shape (r, r) or None
        Left Gram matrix (``None``: identity).
    Q : Tensor of shape (c, c) or None
        Right Gram matrix (``None``: identity).
    N : Tensor of shape (r, c)
    sparseness : float or None
    """

    def __init__(self, P, Q, N, sparseness):
        self.P, self.Q, self.N, self.sparseness = P, Q, N, sparseness

    def apply(self, V):
        """``P V Q``."""
        out = V if self.P is None else self.P @ V
        return out if self.Q is None else out @ self.Q

    def value(self, V, PVQ):
        """``f(V)`` (float64) from ``V`` and ``PVQ = apply(V)``."""
        quad = torch.linalg.vecdot(V.flatten(), PVQ.flatten())
        lin = torch.linalg.vecdot(V.flatten(), self.N.flatten())
        return 0.5 * quad.to(torch.float64) - lin.to(torch.float64)

    def project(self, V):
        """Nearest point of the constraint set, row by row."""
        if self.sparseness is None:
            return V.clamp(min=0)
        return cone_project(V, self.sparseness)

    def step_size(self):
        """``1 / (||P||_2 ||Q||_2)``, the inverse of the gradient's Lipschitz
        constant."""
        return 1.0 / (_top_eigenvalue(self.P) * _top_eigenvalue(self.Q))


def monotone_apg(quad, F, n_steps):
    """Monotone accelerated projected gradient on a :class:`TwoSidedQuadratic`.

    Steps are ``1 / L`` (:meth:`TwoSidedQuadratic.step_size`) with Nesterov
    momentum (Beck and Teboulle's monotone FISTA): a step whose objective is
    higher than the current one is rejected and the momentum restarts, so the
    objective never increases. Nothing is read back from the device (where
    the solvers run sync-free, the step size comes from power iterations,
    :func:`~skpart._core._hoyer.top_eigenvalue`).

    Parameters
    ----------
    quad : TwoSidedQuadratic
    F : Tensor of shape (r, c)
        Starting factor (rows already in the constraint set).
    n_steps : int

    Returns
    -------
    Tensor of shape (r, c)
    """
    step = quad.step_size()
    x, Px = F, quad.apply(F)
    fx = quad.value(x, Px)
    y, Py = x, Px
    t = torch.ones((), dtype=torch.float64, device=F.device)
    for _ in range(n_steps):
        z = quad.project(y - step * (Py - quad.N))
        Pz = quad.apply(z)
        fz = quad.value(z, Pz)
        accept = fz <= fx  # False for NaN: a failed step changes nothing
        t_next = torch.where(accept, 0.5 * (1 + torch.sqrt(1 + 4 * t * t)), 1.0)
        momentum = torch.where(accept, (t - 1) / t_next, 0.0).to(F.dtype)
        x_new = torch.where(accept, z, x)
        Px_new = torch.where(accept, Pz, Px)
        # After a rejection the momentum is 0: the next step starts from x.
        y = x_new + momentum * (x_new - x)
        Py = Px_new + momentum * (Px_new - Px)
        x, Px, fx, t = x_new, Px_new, torch.where(accept, fz, fx), t_next
    return x


def fine_tune(
    X,
    W,
    layers,
    *,
    max_iter=100,
    tol=1e-4,
    sparseness_codes=None,
    sparseness_components=None,
    verbose=0,
):
    """Joint fine-tuning of all factors of ``X ~ W H_L ... H_1``.

    Block coordinate descent on ``0.5 ||X - W H_L ... H_1||_F^2`` over
    non-negative factors. One sweep updates ``H_1``, ..., ``H_L`` and then
    ``W``, each on its exact quadratic subproblem ``X ~ A H_l B``
    (``A = W H_L ... H_(l+1)``, ``B = H_(l-1) ... H_1``) and never increasing
    the objective:

    - ``W`` and ``H_1``, whose subproblems are one-sided (``B = I`` for
      ``H_1``), with the SparseNMF core's updates: HALS sweeps, or Hoyer's
      projected gradient when the factor has a sparseness target;
    - the inner ``H_l`` (``l >= 2``), whose subproblems are two-sided, with a
      monotone accelerated projected gradient (:func:`monotone_apg`).

    A factor with a sparseness target keeps every row at that Hoyer
    sparseness. Before the first sweep and after every sweep the factors are
    rescaled by powers of two (:func:`_balance`), which changes neither the
    product nor any row's sparseness. The data enters a sweep through two
    products only, ``W^T X`` at the start and ``X C^T`` (``C = H_L ... H_1``)
    before the codes' update, ``2 n_samples n_features k_L`` operations; the
    Gram matrices and right-hand sides of the layers are propagated from
    ``W^T W`` and ``W^T X`` through the ranks, and the objective is evaluated
    from them without forming ``W C``.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
        Non-negative data, dense or sparse CSR.
    W : Tensor of shape (n_samples, k_L)
        Starting codes of the last layer.
    layers : list of Tensor
        Starting ``H_l`` of shape ``(k_l, k_(l-1))``.
    max_iter : int, default=100
        Number of sweeps at most (0 returns the input).
    tol : float, default=1e-4
        Stop when a sweep lowers the error ``||X - W H_L ... H_1||_F`` by less
        than ``tol`` times its value before the first sweep (scikit-learn's
        rule for its multiplicative updates, tested at every sweep). ``0``
        runs ``max_iter`` sweeps.
    sparseness_codes : float or None, default=None
        Hoyer sparseness of every row of ``W``.
    sparseness_components : sequence of (float or None) or None, default=None
        Hoyer sparseness of the rows of every ``H_l``.
    verbose : int, default=0

    Returns
    -------
    W : Tensor of shape (n_samples, k_L)
    layers : list of Tensor
    loss_curve : list of float
        ``0.5 ||X - W H_L ... H_1||_F^2`` before the first sweep and after
        every sweep.
    n_iter : int
        Number of sweeps done.

    Notes
    -----
    A sweep reads nothing back from the device but its loss, once, for the
    stopping rule (``tol > 0``) or ``verbose``; with ``tol=0`` the sweeps are
    queued without waiting and the losses are read together at the end.
    """
    atoms_targets = sparseness_components or [None] * len(layers)
    op = DataOperator(X)
    n, m = op.shape
    half_sq_X = op.half_sq_norm()
    Wt, layers, _ = _balance(W.mT.contiguous(), layers)  # Wt: (k_L, n)
    inner_W = n_inner_sweeps(n, m, Wt.shape[0])
    inner_H = n_inner_sweeps(m, n, layers[0].shape[0])
    update_W = factor_update(
        solver="cd", sparseness=sparseness_codes, codes=True, rescale=False
    )
    update_H = factor_update(solver="cd", sparseness=atoms_targets[0], codes=False)
    C = effective_atoms(layers)[-1]
    S = Wt @ Wt.mT
    loss = gram_half_sq_error(half_sq_X, op.atoms_product_t(C), Wt, C @ C.mT, S)
    # The losses stay on the device; a sweep reads its loss only for the
    # stopping rule (tol > 0) or to print it.
    losses = [loss]
    read = tol > 0 or verbose
    if tol > 0:
        plateau = ErrorPlateau(tol, _error(float(loss)), stop_at_zero=False)
    start_time = time.time()
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        grams, cross = _layer_grams(op, Wt, S, layers)
        B, BBt = _update_layers(layers, grams, cross, update_H, inner_H, atoms_targets)
        Bt = op.atoms_product_t(B)  # codes' update, the atoms B = C fixed
        Wt, _ = update_W(Wt, BBt, Bt, inner_W)
        S = Wt @ Wt.mT
        losses.append(gram_half_sq_error(half_sq_X, Bt, Wt, BBt, S))
        Wt, layers, scale = _balance(Wt, layers)
        S = S * (scale * scale)
        if not read:
            continue
        loss = float(losses[-1])
        if verbose:
            elapsed = time.time() - start_time
            print(f"Fine-tuning sweep {n_iter} after {elapsed:.3f} s, loss: {loss:f}")
        if tol > 0 and plateau(_error(loss)):
            break
    loss_curve = torch.stack(losses).to(torch.float64).tolist()
    return Wt.mT.contiguous(), layers, loss_curve, n_iter


def _error(loss):
    """Frobenius error ``sqrt(2 loss)`` of a half squared error."""
    return math.sqrt(2 * max(loss, 0.0))


def _layer_grams(op, Wt, S, layers):
    """Top-down pass of a fine-tuning sweep: ``A_l^T A_l`` and ``A_l^T X``
    of every layer's subproblem ``X ~ A_l H_l B_l``, with
    ``A_l = W H_L ... H_(l+1)`` (the layers above still old), propagated
    from ``S = W^T W`` and ``W^T X`` through the ranks."""
    n_layers = len(layers)
    grams, cross = [None] * n_layers, [None] * n_layers
    grams[-1], cross[-1] = S, op.codes_product(Wt)
    for idx in range(n_layers - 1, 0, -1):
        H = layers[idx]
        grams[idx - 1] = H.mT @ grams[idx] @ H
        cross[idx - 1] = H.mT @ cross[idx]
    return grams, cross


def _update_layers(layers, grams, cross, update_first, inner, atoms_targets):
    """Bottom-up pass of a fine-tuning sweep, in place on ``layers``: ``H_1``
    with its one-sided update, then every ``H_l`` (``l >= 2``) by
    :func:`monotone_apg` with ``B_l = H_(l-1) ... H_1`` already updated.
    Returns the new effective atoms ``C = H_L ... H_1`` and ``C C^T``."""
    layers[0], _ = update_first(layers[0], grams[0], cross[0], inner)
    B = layers[0]
    BBt = B @ B.mT
    for idx in range(1, len(layers)):
        quad = TwoSidedQuadratic(grams[idx], BBt, cross[idx] @ B.mT, atoms_targets[idx])
        layers[idx] = monotone_apg(quad, layers[idx], _INNER_STEPS)
        B = layers[idx] @ B
        BBt = B @ B.mT
    return B, BBt


def layer_codes(
    X, layers, *, solver="cd", max_iter=200, tol=1e-4, sparseness_codes=None
):
    """Codes of every layer for ``X``, with all atoms fixed.

    The codes of layer ``l`` solve ``X ~ W_l (H_l ... H_1)`` with
    :func:`~skpart._core._nmf.solve_codes` from its default start, so they
    depend on each sample alone and the last entry equals the codes
    ``transform`` returns.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
    layers : list of Tensor
    solver : {"cd", "mu"}, default="cd"
    max_iter : int, default=200
    tol : float, default=1e-4
    sparseness_codes : sequence of (float or None) or None, default=None

    Returns
    -------
    list of Tensor
        Entry ``l`` has shape ``(n_samples, k_l)``.
    """
    codes_targets = sparseness_codes or [None] * len(layers)
    return [
        solve_codes(
            X,
            C,
            solver=solver,
            max_iter=max_iter,
            tol=tol,
            sparseness_W=codes_targets[idx],
        )[0]
        for idx, C in enumerate(effective_atoms(layers))
    ]
