"""Online (mini-batch) NMF on accumulated sufficient statistics (Mairal et al.)."""

import collections
import math
import time
from dataclasses import dataclass

import torch

from ._hals import n_inner_sweeps
from ._hoyer import cone_project
from ._multilayer import effective_atoms
from ._nmf import solve_codes
from ._operator import DataOperator, gram_half_sq_error
from ._stopping import MiniBatchStopping
from ._updates import factor_update


@dataclass
class OnlineNMF:
    """Atoms of an online NMF and the statistics they are fitted to.

    With ``w_i`` the code of sample ``x_i`` when its mini-batch was seen and
    ``c_i`` the weight left to it by the forgetting factor, ``A`` is
    ``sum_i c_i w_i^T w_i / weight`` and ``B`` is ``sum_i c_i w_i^T x_i /
    weight`` with ``weight = sum_i c_i``: per-sample means, so that their scale
    does not grow with the number of samples seen. The atoms minimise
    ``0.5 tr(H^T A H) - tr(H^T B)`` plus the per-sample penalties, which is the
    full-batch objective in ``H`` divided by the number of samples when every
    ``c_i`` is 1 and the codes are fixed.

    Attributes
    ----------
    H : Tensor of shape (k, m)
        Atoms, one per row (contiguous; updated in place by HALS).
    A : Tensor of shape (k, k)
    B : Tensor of shape (k, m)
    weight : float
        Effective number of samples behind ``A`` and ``B`` (0 before the
        first step).
    step : Tensor or None
        Step size of the atoms' projected gradient (sparseness target only),
        carried from step to step.
    """

    H: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    weight: float = 0.0
    step: torch.Tensor | None = None

    @classmethod
    def start(cls, H, sparseness_H=None):
        """Empty statistics around the starting atoms ``H`` (projected onto
        the sparseness constraint when there is one)."""
        H = H.clone().contiguous()
        if sparseness_H is not None:
            H = cone_project(H, sparseness_H).contiguous()
        k, m = H.shape
        kw = {"dtype": H.dtype, "device": H.device}
        return cls(H, torch.zeros((k, k), **kw), torch.zeros((k, m), **kw))


def minibatch_step(
    state,
    X,
    *,
    rho,
    solver="cd",
    code_max_iter=200,
    tol=1e-4,
    l1_reg_W=0.0,
    l2_reg_W=0.0,
    l1_reg_H=0.0,
    l2_reg_H=0.0,
    sparseness_W=None,
    sparseness_H=None,
    order=None,
    balance=True,
):
    """One online NMF step on the mini-batch ``X`` (Frobenius loss).

    1. Codes of the batch with the atoms fixed: :func:`solve_codes` from its
       default start, exactly as ``transform`` computes them.
    2. The statistics are updated: the past keeps the weight ``rho``,
       ``weight <- rho * weight + b`` and ``A``, ``B`` move to the new
       weighted means with ``W^T W`` and ``W^T X`` of the batch.
    3. The atoms take a few steps on ``min_H 0.5 tr(H^T A H) - tr(H^T B)``
       warm-started from the current atoms: HALS sweeps (``solver="cd"``),
       one multiplicative update (``"mu"``), or Hoyer's projected gradient
       with the cone projection when ``sparseness_H`` is set, so every atom
       keeps its target sparseness exactly. The atoms of components whose
       codes vanished are left alone (:func:`update_atoms`).
    4. With ``balance``, and when the objective does not depend on the
       scale of the components (no penalty, no sparseness target of the
       codes), every live atom is rescaled against its codes
       (:func:`balance_atoms`), so that the atoms stay bounded.

    Parameters
    ----------
    state : OnlineNMF
        Updated in place.
    X : Tensor of shape (b, m)
        Non-negative mini-batch, dense or sparse CSR, in the atoms' dtype.
    rho : float
        Weight of the past statistics, in [0, 1].
    solver : {"cd", "mu"}, default="cd"
    code_max_iter : int, default=200
        Iteration cap of the codes' solver.
    tol : float, default=1e-4
        Tolerance of the codes' solver.
    l1_reg_W, l2_reg_W : float, default=0.0
        Penalties of the codes (scaled as in :func:`solve_codes`).
    l1_reg_H, l2_reg_H : float, default=0.0
        Penalties of the atoms per sample (the full-batch ones divided by the
        number of samples).
    sparseness_W, sparseness_H : float or None, default=None
        Hoyer sparseness of every code vector and of every atom.
    order : list of int or None, default=None
        Order of the components in the HALS sweeps (``None``: natural order).
    balance : bool, default=True
        Rescale the atoms against their codes after the update (step 4).

    Returns
    -------
    W : Tensor of shape (b, k)
        Codes of the batch (with the atoms before the update).
    fit : 0-d Tensor
        ``0.5 ||X - W H||_F^2`` with the atoms before the update.
    objective : 0-d Tensor (float64)
        ``fit + l1_reg_W |W|_1 + 0.5 l2_reg_W |W|_F^2`` (scikit-learn's batch
        cost, before division by the batch size).
    change : 0-d Tensor
        ``||H_new - H_old||_F / ||H_new||_F``.

    Notes
    -----
    Apart from the codes' solver (which tests its rows' convergence every
    few iterations), the step reads nothing back from the device: the
    figures it returns are tensors, for the caller to read when it checks
    (:func:`run_passes`).
    """
    W, _ = solve_codes(
        X,
        state.H,
        solver=solver,
        max_iter=code_max_iter,
        tol=tol,
        l1_reg_W=l1_reg_W,
        l2_reg_W=l2_reg_W,
        sparseness_W=sparseness_W,
    )
    fit, change, dead = _update_atoms(
        state,
        W,
        X,
        rho=rho,
        solver=solver,
        l1_reg_H=l1_reg_H,
        l2_reg_H=l2_reg_H,
        sparseness_H=sparseness_H,
        order=order,
    )
    penalised = l1_reg_W or l2_reg_W or l1_reg_H or l2_reg_H
    if balance and sparseness_W is None and not penalised:
        balance_atoms(state, dead=dead)
    # float64, the precision of the Python floats these sums were before.
    objective = fit.to(torch.float64)
    if l1_reg_W or l2_reg_W:
        penalty = l1_reg_W * W.sum() + 0.5 * l2_reg_W * W.square().sum()
        objective = objective + penalty.to(torch.float64)
    return W, fit, objective, change


def update_atoms(
    state,
    W,
    X,
    *,
    rho,
    solver="cd",
    l1_reg_H=0.0,
    l2_reg_H=0.0,
    sparseness_H=None,
    order=None,
):
    """Fold the batch ``(W, X)`` into the statistics and update the atoms.

    Steps 2 and 3 of :func:`minibatch_step`. The atoms of dead components
    (:func:`dead_components`) are left as they are: their statistics are
    too small to tell an atom (dividing by a vanishing ``A[t, t]`` blows the
    atom up), and the live atoms are updated without them.

    Returns
    -------
    cost : 0-d Tensor
        ``0.5 ||X - W H||_F^2`` with the atoms before the update, from the
        batch's Gram matrices (no dense ``b x m`` product).
    change : 0-d Tensor
        ``||H_new - H_old||_F / ||H_new||_F`` (0 for vanishing atoms).
    """
    cost, change, _ = _update_atoms(
        state,
        W,
        X,
        rho=rho,
        solver=solver,
        l1_reg_H=l1_reg_H,
        l2_reg_H=l2_reg_H,
        sparseness_H=sparseness_H,
        order=order,
    )
    return cost, change


def _update_atoms(state, W, X, *, rho, solver, l1_reg_H, l2_reg_H, sparseness_H, order):
    """:func:`update_atoms`, also returning the mask of dead components (for
    :func:`balance_atoms`, on the same statistics)."""
    return fold_statistics(
        state,
        *batch_statistics(W, X),
        rho=rho,
        solver=solver,
        l1_reg_H=l1_reg_H,
        l2_reg_H=l2_reg_H,
        sparseness_H=sparseness_H,
        order=order,
    )


def batch_statistics(W, X):
    """What an online step keeps of the batch ``X`` and its codes ``W``:
    ``(W^T W, W^T X, 0.5 ||X||^2, b)``, the arguments of
    :func:`fold_statistics` (``X`` dense or sparse CSR, ``b`` its rows)."""
    op = DataOperator(X)
    return W.mT @ W, op.rmatmul(W).mT, op.half_sq_norm(), W.shape[0]


def fold_statistics(
    state,
    WtW,
    WtX,
    half_sq_X,
    b,
    *,
    rho,
    solver,
    l1_reg_H,
    l2_reg_H,
    sparseness_H,
    order,
):
    """Fold a batch's statistics into ``state`` and update its atoms.

    The batch is given by its statistics alone (``W^T W``, ``W^T X``,
    ``0.5 ||X||^2`` and its ``b`` samples), so a batch held in blocks on
    several workers folds the sums of its blocks' statistics the same way.
    Returns ``(cost, change, dead)`` as :func:`_update_atoms`.
    """
    H_old = state.H
    cost = gram_half_sq_error(half_sq_X, WtX, H_old, WtW)

    past = rho * state.weight
    total = past + b
    state.A.mul_(past / total).add_(WtW, alpha=1.0 / total)
    state.B.mul_(past / total).add_(WtX, alpha=1.0 / total)
    state.weight = total

    update = factor_update(
        solver=solver,
        sparseness=sparseness_H,
        codes=False,
        l1=l1_reg_H,
        l2=l2_reg_H,
        order=order,
        step=state.step,
    )
    dead = dead_components(state.A)
    A, B = live_statistics(state.A, state.B, dead)
    H, _ = update(H_old, A, B, n_inner_sweeps(WtX.shape[1], b, H_old.shape[0]))
    state.H = torch.where(dead.unsqueeze(1), H_old, H).contiguous()
    if sparseness_H is not None:
        state.step = update.step
    norm = torch.linalg.vector_norm(state.H)
    diff = torch.linalg.vector_norm(state.H - H_old)
    change = torch.where(norm > 0, diff / norm, 0.0)
    return cost.clamp(min=0), change, dead


def dead_components(A):
    """The components whose codes have vanished from the statistics: a mask
    of ``A[t, t] <= eps * max(diag(A))`` (``eps`` the machine epsilon of the
    dtype), all False when every component is alive.

    Their codes are then at the level of rounding errors of the others, and
    the exact minimiser of their atom on the statistics divides rounding
    errors by ``A[t, t]``: the atom grows by orders of magnitude at every
    step. Before the first step (``A = 0``) every component is dead.
    """
    diag = torch.diagonal(A)
    return diag <= torch.finfo(A.dtype).eps * diag.max()


def live_statistics(A, B, dead):
    """``A`` and ``B`` with the rows and columns of the ``dead`` components
    zeroed (a mask; the same values when none is dead): the updates leave a
    component with ``A[t, t] = 0`` alone, and the live atoms no longer see
    the dead ones."""
    live = (~dead).to(A.dtype)
    return A * live.unsqueeze(1) * live.unsqueeze(0), B * live.unsqueeze(1)


def balance_atoms(state, *, dead=None):
    """Rescale the atoms of ``state`` against their codes, in place.

    The model ``W H`` does not change when component ``t`` has its atom
    divided by ``d_t`` and its codes multiplied by it, and nothing in the
    atoms' statistics fixes that scale: rounding and weakly used components
    let it drift until atoms reach overflow (and float32 codes are NaN).
    Every live atom is divided by the power of two ``d_t`` nearest to
    ``sqrt(||H_t|| / sqrt(A[t, t]))``, so that its norm and the root mean
    square of its codes agree within a factor of two; the atom of a dead
    component (:func:`dead_components`, whose codes are about 0 and whose
    scale is free) by the power of two that brings its norm nearest to the
    root mean square norm of the balanced live atoms. The statistics become
    those of the rescaled codes: ``A <- D A D``, ``B <- D B``. Powers of two
    make this exact, and the objective of the atoms is unchanged. Only valid
    when neither factor has a penalty and the codes have no sparseness
    target (the codes' problem would change); a sparseness target of the
    atoms is kept (a rescaled row keeps its sparseness), and so is the
    projected gradient's step size (preconditioned by ``diag(A)``).

    Parameters
    ----------
    state : OnlineNMF
    dead : Tensor of shape (k,) or None, default=None
        :func:`dead_components` of ``state.A`` when the caller has it
        already (``None``: computed here).

    Returns
    -------
    d : Tensor of shape (k,)
        The factors the atoms were divided by.
    """
    norms = torch.linalg.vector_norm(state.H, dim=1)
    rms = torch.diagonal(state.A).clamp(min=0).sqrt()
    if dead is None:
        dead = dead_components(state.A)
    live = (norms > 0) & (rms > 0) & ~dead
    target = torch.where(live, torch.sqrt(norms * rms), 0.0)
    n_live = live.sum().clamp(min=1)
    typical = torch.sqrt(target.square().sum() / n_live)
    target = torch.where(dead & (norms > 0), typical, target)
    ratio = torch.where(target > 0, norms / torch.where(target > 0, target, 1.0), 1.0)
    d = torch.exp2(torch.round(torch.log2(ratio)))
    state.H = (state.H / d.unsqueeze(1)).contiguous()
    state.A = state.A * d.unsqueeze(1) * d.unsqueeze(0)
    state.B = state.B * d.unsqueeze(1)
    return d


def multilayer_step(
    states,
    X,
    *,
    rho,
    solver="cd",
    code_max_iter=200,
    tol=1e-4,
    sparseness_codes=None,
    sparseness_components=None,
):
    """One online step of a multilayer NMF ``X ~ W_L H_L ... H_1``.

    Layer 1 takes a :func:`minibatch_step` (without its balancing) on ``X``;
    layer ``l`` takes one on the codes of layer ``l - 1`` just computed (with
    the layer's atoms before the step), so every layer's atoms follow
    the statistics of the codes streamed up to it (the online version of the
    layer-wise pass; there is no joint fine-tuning). As the codes of a layer
    do not depend on the updates of the layers before it, the step is done in
    two halves: every layer's codes and statistics
    (:func:`multilayer_statistics`), then every layer's atoms
    (:func:`fold_layers`).

    Then every layer whose components can be rescaled without changing a
    constraint (no sparseness target of its codes nor of the next layer's
    atoms) has its atoms rescaled against its codes (:func:`balance_atoms`),
    first layer first; the codes of layer ``l`` are the input of layer
    ``l + 1``, whose atoms and statistics ``B`` take the factors ``d`` on
    their columns, so that ``H_L ... H_1`` does not change.

    Parameters
    ----------
    states : list of OnlineNMF
        One per layer, updated in place.
    X : Tensor of shape (b, m)
    rho : float
    solver : {"cd", "mu"}, default="cd"
    code_max_iter : int, default=200
    tol : float, default=1e-4
    sparseness_codes, sparseness_components : sequence of (float or None) or None

    Returns
    -------
    W : Tensor of shape (b, k_L)
        Codes of the last layer.
    cost : 0-d Tensor (float64)
        Sum of the layers' data-fit terms (for the stopping rule).
    change : 0-d Tensor
        Largest relative change of a layer's atoms.
    stack_cost : 0-d Tensor
        ``0.5 ||X - W_L H_L ... H_1||_F^2`` with the updated atoms.
    """
    data, stats, stack_WtX = multilayer_statistics(
        [state.H for state in states],
        X,
        solver=solver,
        code_max_iter=code_max_iter,
        tol=tol,
        sparseness_codes=sparseness_codes,
    )
    cost, change, stack_cost = fold_layers(
        states,
        stats,
        stack_WtX,
        rho=rho,
        solver=solver,
        sparseness_codes=sparseness_codes,
        sparseness_components=sparseness_components,
    )
    return data, cost, change, stack_cost


def multilayer_statistics(
    layers, X, *, solver="cd", code_max_iter=200, tol=1e-4, sparseness_codes=None
):
    """The first half of :func:`multilayer_step`: the codes of every layer
    of the mini-batch ``X`` with the atoms ``layers`` fixed, and what the
    atoms' update needs of them.

    The codes of layer ``l`` are solved on those of layer ``l - 1`` with
    layer ``l``'s atoms as they were before the step (the update of a layer
    changes only its own atoms), so every layer's codes come first and the
    atoms' updates (:func:`fold_layers`) after, from these statistics alone.
    Those of a batch held in row blocks are the sums of its blocks'.

    Returns
    -------
    W : Tensor of shape (b, k_L)
        Codes of the last layer.
    stats : list of tuple
        Per layer, :func:`batch_statistics` of its codes and its input.
    stack_WtX : Tensor of shape (k_L, m)
        ``W_L^T X``, for the error of the whole stack.
    """
    codes_targets = sparseness_codes or [None] * len(layers)
    data, stats = X, []
    for H, target in zip(layers, codes_targets):
        W, _ = solve_codes(
            data,
            H,
            solver=solver,
            max_iter=code_max_iter,
            tol=tol,
            sparseness_W=target,
        )
        stats.append(batch_statistics(W, data))
        data = W
    return data, stats, DataOperator(X).rmatmul(data).mT


def fold_layers(
    states,
    stats,
    stack_WtX,
    *,
    rho,
    solver="cd",
    sparseness_codes=None,
    sparseness_components=None,
):
    """The second half of :func:`multilayer_step`: every layer's statistics
    (from :func:`multilayer_statistics`) folded into its state and its atoms
    updated (:func:`fold_statistics`), then the layers balanced
    (:func:`balance_layers`). Returns ``(cost, change, stack_cost)`` as
    :func:`multilayer_step`."""
    n_layers = len(states)
    codes_targets = sparseness_codes or [None] * n_layers
    atoms_targets = sparseness_components or [None] * n_layers
    cost, change = 0.0, 0.0
    for state, layer_stats, target in zip(states, stats, atoms_targets):
        c, d, _ = fold_statistics(
            state,
            *layer_stats,
            rho=rho,
            solver=solver,
            l1_reg_H=0.0,
            l2_reg_H=0.0,
            sparseness_H=target,
            order=None,
        )
        # As Python's max(change, d): d only where it is larger.
        cost = cost + c.to(torch.float64)  # the precision of Python floats
        change = torch.where(d > change, d, change)
    C = effective_atoms([s.H for s in states])[-1]
    # 0.5 ||X||^2 is the first layer's input's, W_L^T W_L the last layer's.
    stack_cost = gram_half_sq_error(stats[0][2], stack_WtX, C, stats[-1][0])
    balance_layers(states, codes_targets, atoms_targets)
    return cost, change, stack_cost.clamp(min=0)


def balance_layers(states, codes_targets, atoms_targets):
    """The rescaling of :func:`multilayer_step`: :func:`balance_atoms` on
    every layer where no constraint forbids it, its factors passed on to the
    columns of the next layer's atoms and statistics ``B``."""
    for idx, state in enumerate(states):
        last = idx + 1 == len(states)
        if codes_targets[idx] is not None or (
            not last and atoms_targets[idx + 1] is not None
        ):
            continue
        d = balance_atoms(state)
        if not last:
            following = states[idx + 1]
            following.H = (following.H * d).contiguous()
            following.B = following.B * d


def run_passes(batches, step, *, n_samples, max_iter, tol, verbose=0):
    """Stream passes over the data until a stopping rule holds.

    Parameters
    ----------
    batches : callable
        ``batches()`` returns an iterable over the mini-batches of one pass
        (tensors, in a fixed order).
    step : callable
        ``step(X)`` takes one online step on the mini-batch ``X`` and returns
        ``(cost, change, fit)``: the cost and the atoms' change for
        :class:`MiniBatchStopping`, and the batch's data-fit term (floats or
        0-d tensors, left on the device until read).
    n_samples : int
        Number of samples in one pass.
    max_iter : int
        Number of passes at most.
    tol : float
        :class:`MiniBatchStopping`'s tolerance (``0``: exactly ``max_iter``
        passes).
    verbose : int, default=0

    Returns
    -------
    n_iter : int
        Passes started.
    n_steps : int
        Mini-batch steps done.
    stopped : bool
        Whether a stopping rule ended the fit (``False``: ``max_iter`` passes).
    recent_fit : float
        Data-fit terms summed over the last ``n_samples`` samples streamed (or
        all of them, if fewer), each with the atoms of its own step.
    recent_samples : int
        Number of samples behind ``recent_fit``.

    Notes
    -----
    The step's figures are read from the device only where they are used:
    once a step, in one read, when the stopping rule needs them (``tol > 0``)
    or they are printed, and the data-fit terms once at the end. With
    ``tol=0`` (``partial_fit``) the passes queue their steps without waiting
    for the device.
    """
    rule = MiniBatchStopping(n_samples, tol)
    recent = collections.deque()
    recent_samples = 0
    n_steps, stopped = 0, False
    start_time = time.time()
    for n_iter in range(1, max_iter + 1):
        for X in batches():
            b = X.shape[0]
            cost, change, fit = step(X)
            n_steps += 1
            recent.append((b, fit))
            recent_samples += b
            while recent_samples - recent[0][0] >= n_samples:
                recent_samples -= recent.popleft()[0]
            if tol == 0 and not verbose:
                continue  # no rule to feed: nothing read back
            cost, change = _read(cost, change)
            stopped = rule(cost, change, b)
            if verbose:
                print(
                    f"Minibatch step {n_steps} (pass {n_iter}): mean batch cost "
                    f"{cost / b:f}, smoothed {rule.ewa}, atoms change "
                    f"{change:.3g}, {time.time() - start_time:.3f} s"
                )
            if stopped:
                break
        if stopped:
            break
    recent_fit = math.fsum(_read(*(fit for _, fit in recent)))
    return n_iter, n_steps, stopped, recent_fit, recent_samples


def _read(*values):
    """Python floats of ``values`` (floats or 0-d tensors), the tensors read
    back from the device together: one synchronisation."""
    tensors = [v for v in values if torch.is_tensor(v)]
    if not tensors:
        return list(values)
    read = iter(torch.stack([t.to(torch.float64) for t in tensors]).tolist())
    return [next(read) if torch.is_tensor(v) else float(v) for v in values]


def forget_rate(forget_factor, batch_size, n_samples):
    """Weight of the past statistics for one step: ``forget_factor`` per pass
    over ``n_samples`` samples, spread over its mini-batches."""
    return float(forget_factor) ** (batch_size / max(n_samples, 1))


def error_from_cost(cost):
    """Frobenius error ``sqrt(2 * cost)`` of a summed data-fit term."""
    return math.sqrt(2 * max(cost, 0.0))
