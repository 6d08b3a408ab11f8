"""NMF solvers (HALS, multiplicative updates, Hoyer's projected gradient)."""

import contextlib
import math
import time

import torch

from ._init import _as_operator, _rmatmul
from ._projections import l1_for_sparseness, project_l1_l2

#: Floor used by scikit-learn's multiplicative updates (float32 machine epsilon).
EPSILON = float(torch.finfo(torch.float32).eps)
_EPS64 = float(torch.finfo(torch.float64).eps)

#: Elements per dense row block (beta divergences, densified sparse blocks).
_BLOCK_ELEMS = 1 << 22
#: Bytes of a (k, block) slab of the factor in a CPU HALS sweep (cache-sized;
#: larger slabs mean fewer small parallel regions, which stall on a busy CPU).
_SWEEP_BYTES = 1 << 22
#: Components per matrix product in a blocked HALS sweep, and the number of
#: problem rows from which the blocked sweep is used on CPU (below it the
#: one-at-a-time sweep has fewer small ops).
_HALS_BLOCK = 16
_BLOCKED_MIN_WIDTH = 4096
#: Convergence is checked every this many iterations (one host sync each).
_CHECK_EVERY = 10
#: The extrapolated HALS rebalances the scale of its factors this often.
_BALANCE_EVERY = 10
#: Extrapolation of HALS (Ang and Gillis, 2019): starting weight, its decrease
#: on a restart, its increase and the increase of its ceiling otherwise. The
#: larger first weight and growth than the paper's (0.5, 1.01, 1.005) reached
#: scikit-learn's 100-iteration MNIST error in 27 instead of 37 iterations.
_EXTRAPOLATION = (0.75, 1.5, 1.05, 1.01)


@contextlib.contextmanager
def _one_thread(device):
    """Run the block with one intra-op thread on CPU (restored afterwards).

    The HALS sweeps and the projected-gradient steps are many small ops
    (``k`` x ``n / k`` or ``n x k`` at a time); their parallel regions are too
    short to pay for the fork and the barrier, and on a shared CPU a barrier
    waits for a descheduled thread. On the 2-core benchmark machine under load
    one thread was 5 to 10 times faster for both, and never slower when idle.
    The large products outside these blocks keep torch's thread setting.
    """
    old = torch.get_num_threads()
    if device.type != "cpu" or old == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# -- data access -------------------------------------------------------------
def _row_blocks(X, width=None):
    """Split ``X`` into row blocks of about ``_BLOCK_ELEMS`` dense entries.

    Returns a list of ``(slice, block)``; a block is a view of a dense ``X`` or
    a CSR tensor holding rows of a sparse ``X`` (densify with :func:`_dense`).
    The block boundaries of a sparse ``X`` are read once here (host syncs at
    setup, none in the iterations).
    """
    n, m = X.shape
    rows = max(1, _BLOCK_ELEMS // max(width or m, 1))
    slices = [slice(i, min(i + rows, n)) for i in range(0, n, rows)]
    if X.layout == torch.strided:
        return [(sl, X[sl]) for sl in slices]
    crow, col, val = X.crow_indices(), X.col_indices(), X.values()
    bounds = crow[[sl.start for sl in slices] + [n]].tolist()
    blocks = []
    for j, sl in enumerate(slices):
        a, b = bounds[j], bounds[j + 1]
        blocks.append(
            (
                sl,
                torch.sparse_csr_tensor(
                    crow[sl.start : sl.stop + 1] - a,
                    col[a:b],
                    val[a:b],
                    size=(sl.stop - sl.start, m),
                    check_invariants=False,
                ),
            )
        )
    return blocks


def _dense(block):
    """A row block of :func:`_row_blocks` as a dense tensor."""
    return block if block.layout == torch.strided else block.to_dense()


def _row_sq_norms(X):
    """Squared L2 norm of every row of ``X`` (dense or CSR), in float64."""
    if X.layout == torch.strided:
        return torch.linalg.vecdot(X, X).to(torch.float64)
    crow = X.crow_indices()
    rows = torch.repeat_interleave(
        torch.arange(X.shape[0], device=X.device), crow[1:] - crow[:-1]
    )
    out = torch.zeros(X.shape[0], dtype=torch.float64, device=X.device)
    return out.index_add_(0, rows, X.values().to(torch.float64) ** 2)


# -- beta divergence ---------------------------------------------------------
def _beta_divergence_block(X, WH, beta):
    """Row sums of the beta divergence of dense blocks ``X`` and ``WH``.

    Same conventions as scikit-learn: entries with ``X <= EPSILON`` only
    contribute through the ``WH`` terms, ``WH`` is floored at ``EPSILON`` where
    it is divided by or logged.
    """
    if beta == 2:
        return _half_sq_rows(X - WH)
    mask = X > EPSILON
    x = torch.where(mask, X, 1.0)
    wh = WH.clamp(min=EPSILON)
    if beta == 1:
        term = torch.where(mask, X * torch.log(x / wh) - X, 0.0)
        return (term.sum(1, dtype=torch.float64)) + WH.sum(1, dtype=torch.float64)
    if beta == 0:
        div = torch.where(mask, x / wh, 0.0)
        term = torch.where(mask, div - torch.log(div.clamp(min=EPSILON)), 0.0)
        return term.sum(1, dtype=torch.float64) - X.shape[1]
    sum_wh_beta = (WH**beta).sum(1, dtype=torch.float64)
    x_wh = torch.where(mask, X * wh ** (beta - 1), 0.0).sum(1, dtype=torch.float64)
    x_beta = torch.where(mask, x**beta, 0.0).sum(1, dtype=torch.float64)
    return (x_beta - beta * x_wh + sum_wh_beta * (beta - 1)) / (beta * (beta - 1))


def _beta_divergence_rows(blocks, W, H, beta):
    """Beta divergence of every row of ``X`` and ``W @ H`` (float64, shape (n,)).

    ``blocks`` are ``X``'s row blocks from :func:`_row_blocks`; ``W`` is
    ``(n, k)`` (any strides), ``H`` is ``(k, m)``. Only one dense block of
    ``W @ H`` exists at a time.
    """
    if beta == 2:  # X - W H in one fused product
        return torch.cat(
            [
                _half_sq_rows(torch.addmm(_dense(Xb), W[sl], H, alpha=-1))
                for sl, Xb in blocks
            ]
        )
    return torch.cat(
        [_beta_divergence_block(_dense(Xb), W[sl] @ H, beta) for sl, Xb in blocks]
    )


def _half_sq_rows(R):
    """Half the squared L2 norm of every row of ``R``, in float64."""
    return torch.linalg.vecdot(R, R).to(torch.float64) / 2


def beta_divergence(X, W, H, beta, *, square_root=False):
    """Beta divergence between ``X`` and ``W @ H``, as scikit-learn computes it.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
        Dense or sparse CSR data.
    W : Tensor of shape (n_samples, n_components)
        Codes.
    H : Tensor of shape (n_components, n_features)
        Atoms.
    beta : float
        2 is half the squared Frobenius norm, 1 the generalised
        Kullback-Leibler divergence, 0 the Itakura-Saito divergence.
    square_root : bool, default=False
        Return ``sqrt(2 * divergence)`` (the Frobenius norm for ``beta=2``).

    Returns
    -------
    Tensor
        0-d float64 tensor on ``X``'s device.
    """
    res = _beta_divergence_rows(_row_blocks(X), W, H, float(beta)).sum()
    return torch.sqrt(2 * res.clamp(min=0)) if square_root else res


# -- HALS (coordinate descent) -----------------------------------------------
def _inverse_diagonal(G):
    """``1 / diag(G)``, with 0 where the diagonal is 0 (a component with no
    partner: its gradient is zero and it is left alone)."""
    diag = torch.diagonal(G)
    return torch.where(diag > 0, 1.0 / diag.clamp(min=torch.finfo(G.dtype).tiny), 0)


def _hals_sweeps(Ut, G, Bt, n_sweeps, order, want_violation):
    """HALS / coordinate descent on ``min_{U >= 0} 0.5 <U G, U> - <U, B>``.

    Each problem row (a column of ``Ut``) is independent; a sweep updates the
    components in ``order`` one at a time with the exact coordinate minimiser
    ``u_t <- max(0, u_t - (G[t] @ U - B[t]) / G[t, t])`` (components with
    ``G[t, t] == 0`` are left alone). This is scikit-learn's coordinate descent
    (``_update_cdnmf_fast``) done one whole component at a time, so it has the
    same iterates.

    Parameters
    ----------
    Ut : Tensor of shape (k, n)
        The factor, transposed and contiguous; updated in place.
    G : Tensor of shape (k, k)
        Gram matrix (with the L2 penalty on its diagonal).
    Bt : Tensor of shape (k, n)
        Linear term (with the L1 penalty subtracted), transposed.
    n_sweeps : int
        Number of sweeps over the components.
    order : list of int
        Order in which the components are visited.
    want_violation : bool
        Also return the projected-gradient violation of the first sweep.

    Returns
    -------
    violation : Tensor of shape (n,) or None
        Sum over components of ``|projected gradient|`` met in the first sweep,
        per problem row (scikit-learn's ``violation``, split by row).
    """
    k, n = Ut.shape
    inv = _inverse_diagonal(G)
    if Ut.device.type == "cpu":
        width = max(256, _SWEEP_BYTES // (k * Ut.element_size()))
    else:
        width = n
    violation = (
        torch.zeros(n, dtype=Ut.dtype, device=Ut.device) if want_violation else None
    )
    sweeps = (
        _hals_blocked
        if Ut.device.type == "cpu" and n >= _BLOCKED_MIN_WIDTH
        else _hals_slabs
    )
    with _one_thread(Ut.device):
        sweeps(Ut, G, Bt, n_sweeps, order, inv, width, violation)
    return violation


def _hals_slabs(Ut, G, Bt, n_sweeps, order, inv, width, violation):
    """The sweeps of :func:`_hals_sweeps`, one slab of ``width`` columns at a
    time (the slab stays in cache for all its sweeps)."""
    want_violation = violation is not None
    n = Ut.shape[1]
    for start in range(0, n, width):
        U = Ut[:, start : start + width]
        negB = -Bt[:, start : start + width]
        viol = violation[start : start + width] if want_violation else None
        for sweep in range(n_sweeps):
            for t in order:
                u = U[t]
                grad = torch.addmv(negB[t], U.mT, G[t])
                if sweep == 0 and want_violation:
                    pg = torch.where(u == 0, grad.clamp(max=0), grad)
                    viol.add_(pg.abs_())
                u.addcmul_(grad, inv[t], value=-1).clamp_(min=0)


def _hals_blocked(Ut, G, Bt, n_sweeps, order, inv, width, violation):
    """The sweeps of :func:`_hals_sweeps` with the gradients of
    ``_HALS_BLOCK`` components at a time from one matrix product.

    At the start of a block the gradients ``G[b] @ U - B[b]`` of its components
    come from one GEMM; inside the block, each update ``delta`` of a component
    is added to the gradients of the block's later components (a rank-one
    update). The iterates are those of the one-at-a-time sweep (up to
    rounding), but most of the work is a GEMM instead of ``k`` matrix-vector
    products that each read the whole factor: 3 times faster for the
    60 000 x 100 MNIST codes. Single-threaded like the plain sweep: with two
    threads on a loaded 2-core machine it was 35 times slower (every small
    parallel region waits for a descheduled thread), and at most 1.25 times
    faster on an idle one.
    """
    want_violation = violation is not None
    n = Ut.shape[1]
    blocks = []
    for b0 in range(0, len(order), _HALS_BLOCK):
        comps = order[b0 : b0 + _HALS_BLOCK]
        idx = torch.tensor(comps, device=G.device)
        Gb = G.index_select(0, idx)
        # A run of consecutive components (no shuffle) reads B as a view.
        run = comps == list(range(comps[0], comps[0] + len(comps)))
        rows = slice(comps[0], comps[0] + len(comps)) if run else idx
        blocks.append((comps, rows, Gb, Gb.index_select(1, idx).mT.contiguous()))
    for start in range(0, n, width):
        U = Ut[:, start : start + width]
        B = Bt[:, start : start + width]
        viol = violation[start : start + width] if want_violation else None
        for sweep in range(n_sweeps):
            for comps, rows, Gb, Gbb_t in blocks:
                grad = torch.addmm(B[rows], Gb, U, beta=-1)
                last = len(comps) - 1
                for i, t in enumerate(comps):
                    u, g = U[t], grad[i]
                    if sweep == 0 and want_violation:
                        viol.add_(torch.where(u == 0, g.clamp(max=0), g).abs_())
                    new = torch.addcmul(u, g, inv[t], value=-1).clamp_(min=0)
                    if i < last:
                        grad[i + 1 :].addr_(Gbb_t[i, i + 1 :], new - u)
                    u.copy_(new)


def _n_inner_sweeps(n_rows, n_other, k):
    """Sweeps per HALS block update (Gillis and Glineur's accelerated HALS).

    A sweep costs about ``n_rows * k**2`` operations while the products that
    prepare it cost ``n_rows * n_other * k``; repeating the cheap sweep a few
    times per product makes each outer iteration closer to an exact block
    minimisation. The count depends only on the shapes (no host sync).
    """
    rho = 1.0 + n_other / (k + 1.0)
    return int(max(1, min(4, 1 + 0.1 * rho)))


# -- Hoyer's projected gradient ----------------------------------------------
def _cone_project(V, sparseness):
    """Euclidean projection of every row of ``V`` onto the non-negative cone of
    vectors with Hoyer sparseness ``sparseness``.

    The direction ``u`` is the projection onto unit L2 norm and the matching L1
    norm (:func:`project_l1_l2`, exact), which maximises ``<v, u>`` over the
    cone's unit sphere; the length is ``<v, u>``, floored at machine epsilon
    so that every row keeps the target sparseness.
    """
    k = V.shape[1]
    u = project_l1_l2(V, l1_for_sparseness(sparseness, k, 1.0), 1.0)
    scale = torch.linalg.vecdot(V, u).clamp(min=torch.finfo(V.dtype).eps)
    return u * scale.unsqueeze(1)


def _best_scale(V, VG, B):
    """Rescale every row of ``V`` (and of ``VG = V @ G``) to the minimiser of
    ``0.5 <a v, a v G> - <a v, b>`` over the scale ``a``.

    Scaling keeps a row's Hoyer sparseness, so this is an exact line search
    along the ray of each row inside the sparseness cone. The scale is floored
    so that the row keeps an L2 norm of at least machine epsilon (a zero row
    has no sparseness).
    """
    eps = torch.finfo(V.dtype).eps
    curv = torch.linalg.vecdot(V, VG).clamp(min=torch.finfo(V.dtype).tiny)
    a = torch.linalg.vecdot(V, B) / curv
    floor = eps / torch.linalg.vector_norm(V, dim=1).clamp(min=eps)
    a = torch.maximum(a, floor).unsqueeze(1)
    return V * a, VG * a


def _pg_steps(
    U, G, B, sparseness, step, n_steps, *, per_row, const=None, rescale=False
):
    """Hoyer's projected gradient with step-size adaptation on
    ``min_U 0.5 <U G, U> - <U, B>`` with every row of ``U`` in the sparseness
    cone.

    A step ``U - mu * grad`` is projected (:func:`_cone_project`) and kept only
    if the objective does not increase; a kept step multiplies ``mu`` by 1.2, a
    rejected one halves it (Hoyer, 2004). The objective is evaluated exactly
    from ``G`` and ``B`` (no product with the data). With ``per_row`` every
    row has its own step size and acceptance (the rows' problems are
    independent: codes, quadratic ``U @ G``), otherwise one step size for the
    whole matrix (atoms, quadratic ``G @ U``, rows coupled through ``G``).

    Without ``per_row`` the gradient of row ``i`` is also divided by
    ``G[i, i]`` (a Jacobi preconditioner). Each row is projected on its own,
    so the projection in that diagonal metric is still the Euclidean
    projection of each row; with ``mu = 1`` the step moves every row to the
    minimiser of its own quadratic with the others fixed (the HALS target).
    On 2 000 MNIST digits with 49 atoms of sparseness 0.8 it reached Hoyer's
    20-iteration objective in 4 outer iterations instead of 6 with the plain
    gradient, whose ``1 / ||G||_2`` step is set by the largest eigenvalue.

    Parameters
    ----------
    U : Tensor of shape (r, c)
        Current factor (rows already in the cone).
    G : Tensor of shape (c, c) (``per_row``) or (r, r)
    B : Tensor of shape (r, c)
    sparseness : float
    step : Tensor of shape (r, 1) or 0-d, or None
        Step sizes, carried from call to call. ``None`` starts from
        ``1 / ||G||_2`` for every row (``per_row``, a step that always
        decreases the objective) or from 1 (times the preconditioner); it
        stays ``None`` with ``n_steps=0`` (an objective evaluation).
    n_steps : int
        Projected-gradient steps to try.
    per_row : bool
    const : Tensor of shape (r,) or None
        Per-row constant added to the objective (``0.5 * ||x_i||^2``), so that
        the returned objective is the data-fit term.
    rescale : bool, default=False
        With ``per_row``, move every projected candidate to the best point on
        its ray (:func:`_best_scale`) before the acceptance test. The
        projection alone picks the Euclidean best length, which can be far
        from the best length for an ill-conditioned ``G``; this exact line
        search made the codes' projected gradient reach a given error in
        several times fewer steps on MNIST.

    Returns
    -------
    U : Tensor of shape (r, k)
    step : Tensor
    obj : Tensor of shape (r,) (``per_row``) or 0-d
        Objective at the returned ``U`` (float64).
    """

    def objective(V, VG):
        rows = 0.5 * torch.linalg.vecdot(V, VG) - torch.linalg.vecdot(V, B)
        rows = rows.to(torch.float64)
        if const is not None:
            rows = rows + const
        return rows if per_row else rows.sum()

    def product(V):
        return V @ G if per_row else G @ V

    if per_row:
        if step is None and n_steps:
            step = _lipschitz_step(G).expand(U.shape[0]).unsqueeze(1).clone()
        precond = 1.0
    else:
        if step is None and n_steps:
            step = torch.ones((), dtype=U.dtype, device=U.device)
        precond = _inverse_diagonal(G).unsqueeze(1) if n_steps else None
    with _one_thread(U.device):
        UG = product(U)
        obj = objective(U, UG)
        for _ in range(n_steps):
            U, UG, obj, step = _pg_step(
                U,
                UG,
                obj,
                step,
                precond,
                B,
                sparseness,
                product,
                objective,
                per_row,
                rescale,
            )
    return U, step, obj


def _pg_step(
    U, UG, obj, step, precond, B, sparseness, product, objective, per_row, rescale
):
    """One trial step of :func:`_pg_steps`."""
    cand = _cone_project(U - (step * precond) * (UG - B), sparseness)
    cand_G = product(cand)
    if rescale and per_row:
        cand, cand_G = _best_scale(cand, cand_G, B)
    cand_obj = objective(cand, cand_G)
    ok = cand_obj <= obj
    okc = ok.unsqueeze(1) if per_row else ok
    U = torch.where(okc, cand, U)
    UG = torch.where(okc, cand_G, UG)
    obj = torch.where(ok, cand_obj, obj)
    step = torch.where(okc, step * 1.2, step * 0.5)
    return U, UG, obj, step


def _lipschitz_step(G):
    """``1 / ||G||_2``: a step size that always decreases the quadratic."""
    top = torch.linalg.eigvalsh(G)[-1]
    return 1.0 / top.clamp(min=torch.finfo(G.dtype).tiny)


# -- multiplicative updates --------------------------------------------------
def _mu_gamma(beta):
    """Exponent of the maximisation-minimisation updates (Fevotte & Idier)."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def _mu_terms(blocks, W, H, beta, side):
    """Numerator and denominator of the multiplicative update of ``W``
    (``side="W"``, one row per row of ``blocks``) or of ``H`` (``side="H"``,
    accumulated over the row blocks), for ``beta != 2``.

    Only one dense block of ``W @ H`` exists at a time, where scikit-learn
    builds the whole ``n_samples x n_features`` product (dense input).
    """
    if side == "W":
        num, den = [], []
    else:
        num = torch.zeros_like(H)
        den = torch.zeros_like(H)
    for sl, Xb in blocks:
        X = _dense(Xb)
        Wb = W[sl]
        WH = Wb @ H
        wh_safe = WH.clamp(min=EPSILON) if beta < 2 else WH
        if beta == 1:
            ratio = X / wh_safe
        elif beta == 0:
            ratio = X / wh_safe**2
        else:
            ratio = X * wh_safe ** (beta - 2)
        if side == "W":
            num.append(ratio @ H.mT)
        else:
            num += Wb.mT @ ratio
        if beta != 1:
            pw = (WH.clamp(min=EPSILON) if beta < 1 else WH) ** (beta - 1)
            if side == "W":
                den.append(pw @ H.mT)
            else:
                den += Wb.mT @ pw
    if side == "W":
        num = torch.cat(num)
        if beta == 1:
            den = H.sum(1).unsqueeze(0).expand_as(num)
        else:
            den = torch.cat(den)
    elif beta == 1:
        W_sum = W.sum(0)
        den = torch.where(W_sum == 0, 1.0, W_sum).unsqueeze(1).expand_as(H)
    return num, den


def _mu_apply(U, num, den, l1, l2, gamma):
    """``U * (num / den) ** gamma`` with scikit-learn's penalties and floors."""
    den = den + l1 if l1 > 0 else den
    if l2 > 0:
        den = den + l2 * U
    den = torch.where(den == 0, EPSILON, den)
    delta = num / den
    if gamma != 1:
        delta = delta**gamma
    return U * delta


# -- public entry points -----------------------------------------------------
def _atoms_times_data_t(A, H):
    """``(X H^T)^T`` as a contiguous ``(k, n)`` tensor for the operator ``A``
    of :func:`_as_operator`. For a dense ``X`` it is ``H @ X^T``: on MNIST
    (60 000 x 784, k = 50) 25% faster than ``X @ H^T``, and the HALS sweeps
    read its rows 20% faster than those of the transposed view."""
    if A.layout == torch.strided:
        return H @ A.mT
    return (A @ H.mT).mT.contiguous()


def _codes_t_times_data(A, At, Wt):
    """``W^T X`` (contiguous ``(k, m)``) from the transposed codes ``Wt``; for
    a dense ``X`` as ``Wt @ X`` (25% faster than ``X^T @ W`` on MNIST)."""
    if A.layout == torch.strided:
        return Wt @ A
    return _rmatmul(A, At, Wt.mT).mT.contiguous()


def _extrapolate(new, old, beta, partner_diag):
    """``max(0, new + beta (new - old))`` row by row, in one fused pass.

    Rows whose partner component is zero (``partner_diag == 0``: the sweeps
    left them alone) are not extrapolated, or they would grow without end.
    """
    out = torch.lerp(old, new, 1.0 + beta).clamp_(min=0)
    live = partner_diag > 0
    if not bool(live.all()):
        out = torch.where(live.unsqueeze(1), out, new)
    return out


def _gram_half_sq_error(half_sq_X, P, V, Q, VVt=None):
    """``0.5 |X - U V|^2`` (float64) from ``half_sq_X = 0.5 |X|^2``,
    ``P = U^T X`` and ``Q = U^T U`` (``VVt``: ``V V^T`` if already at hand):
    no dense ``n x m`` product."""
    VVt = V @ V.mT if VVt is None else VVt
    cross = torch.linalg.vecdot(P.flatten(), V.flatten()).double()
    quad = torch.linalg.vecdot(Q.flatten(), VVt.flatten()).double()
    return half_sq_X - cross + 0.5 * quad


def _balancing_scale(Ut, V):
    """Per-component factor ``d`` (shape ``(k, 1)``) with which the rows of
    ``Ut * d`` and of ``V / d`` have equal L2 norms (1 where either is zero)."""
    a = torch.linalg.vector_norm(Ut, dim=1, keepdim=True)
    b = torch.linalg.vector_norm(V, dim=1, keepdim=True)
    ok = (a > 0) & (b > 0)
    return torch.where(ok, torch.sqrt(b / torch.where(ok, a, 1.0)), 1.0)


def _fit_her(
    X,
    W,
    H,
    *,
    max_iter,
    tol,
    l1_reg_W,
    l1_reg_H,
    l2_reg_W,
    l2_reg_H,
    sparseness_W,
    sparseness_H,
    order,
    verbose,
):
    """:func:`fit_nmf` for ``solver="cd"`` (Frobenius loss): block updates
    with extrapolation and restarts (Ang and Gillis, 2019, "HER").

    Each iteration updates ``W`` with the extrapolated atoms ``H_y`` fixed,
    extrapolates ``W_y = max(0, W_n + b (W_n - W))``, updates ``H`` with
    ``W_y`` fixed and extrapolates ``H_y`` the same way. The weight ``b``
    grows while the objective of ``(W_y, H_n)`` decreases and shrinks, with a
    restart from the last accepted pair, when it increases. The pair returned
    is the best one met, so the objective never ends above its starting value.

    An unconstrained factor is updated by HALS sweeps (scikit-learn's
    coordinate descent, one whole component at a time: the same fixed
    points); on MNIST the extrapolation reaches scikit-learn's 100-iteration
    error in about half the iterations of plain HALS. A factor with a
    sparseness constraint is updated by Hoyer's projected gradient
    (:func:`_pg_steps`) and is not extrapolated; nothing is extrapolated when
    the codes are constrained (see ``extrapolate`` below). Extrapolating the
    free codes made 2 000 MNIST digits with 49 atoms of sparseness 0.8 reach
    Hoyer's 20-iteration objective in 3 instead of 4 iterations.

    The run stops when the error decreases by less than ``tol`` times the
    initial error over ``_CHECK_EVERY`` iterations (the test of ``"mu"``)
    and, without constraints, scikit-learn's test of its coordinate descent
    also holds (projected-gradient violation of the sweeps below ``tol``
    times its first value). Both are tested every ``_CHECK_EVERY``
    iterations.
    """
    start_time = time.time()
    n, m = X.shape
    k = H.shape[0]
    A, At = _as_operator(X)
    eye = torch.eye(k, dtype=H.dtype, device=H.device)
    half_sq_X = 0.5 * _row_sq_norms(X).sum()
    # At least two sweeps per block: with the extrapolation, one sweep (the
    # shape rule's choice for the codes at k = 100) needed twice the
    # iterations on MNIST (57 instead of 29 for 10 000 digits) and 1.5 times
    # the time.
    inner_W = max(2, _n_inner_sweeps(n, m, k))
    inner_H = max(2, _n_inner_sweeps(m, n, k))
    b0, eta, gamma, gamma_bar = _EXTRAPOLATION
    constrained = sparseness_W is not None or sparseness_H is not None
    # Rescaling the components would change every sample's code sparseness.
    balance = sparseness_W is None and not (
        l1_reg_W or l1_reg_H or l2_reg_W or l2_reg_H
    )
    step = {"W": None, "H": None}

    def objective(P, V, Q, Wt, H):
        # The loss of the pair from the products at hand, plus the penalties.
        out = _gram_half_sq_error(half_sq_X, P, V, Q)
        for U, l1, l2 in ((Wt, l1_reg_W, l2_reg_W), (H, l1_reg_H, l2_reg_H)):
            if l1:
                out = out + l1 * U.sum().double()
            if l2:
                out = out + 0.5 * l2 * torch.linalg.vecdot(U.flatten(), U.flatten())
        return float(out)

    def update(name, Ut, G, Bt, inner, sparseness, check):
        """New transposed factor from ``Ut`` (``(k, rows)``), and the sweeps'
        violation (``None`` for a constrained factor)."""
        if sparseness is None:
            Ut = Ut.clone()
            return Ut, _hals_sweeps(Ut, G, Bt, inner, order(), check)
        if name == "W":  # one problem per sample: rows of W
            U, step["W"], _ = _pg_steps(
                Ut.mT,
                G,
                Bt.mT,
                sparseness,
                step["W"],
                inner,
                per_row=True,
                rescale=True,
            )
            return U.mT.contiguous(), None
        U, step["H"], _ = _pg_steps(
            Ut, G, Bt, sparseness, step["H"], inner, per_row=False
        )
        return U, None

    # A constrained factor is not extrapolated: projecting the extrapolated
    # point back onto the cone costs one more projection an iteration, and on
    # 2 000 MNIST digits with 49 atoms of sparseness 0.8 the objective after 4
    # iterations was 32 045 with it, 20 278 without. Nor is anything when the
    # codes are constrained: extrapolating the atoms then slowed the codes'
    # projected gradient down (5 000 MNIST digits, k = 100, code sparseness
    # 0.663: MSE 0.0133 after 60 iterations against 0.0105 without).
    extrapolate_W = sparseness_W is None
    extrapolate_H = not constrained

    Wt = W.mT.contiguous()  # accepted pair; W transposed (codes of a component
    H = H.contiguous()  # contiguous)
    if sparseness_W is not None:
        Wt = _cone_project(Wt.mT, sparseness_W).mT.contiguous()
    if sparseness_H is not None:
        H = _cone_project(H, sparseness_H)
    Wy, Hy = Wt, H
    beta, beta_max, beta_prev = b0, 1.0, b0
    best, best_obj, obj_prev = (Wt, H), None, None
    violation_init = error_init = error_prev = None
    for n_iter in range(1, max_iter + 1):
        check = tol > 0 and (n_iter == 1 or n_iter % _CHECK_EVERY == 0)
        # ---- W from W_y, with H_y fixed -------------------------------------
        Bt = _atoms_times_data_t(A, Hy)  # (k, n) = (X H_y^T)^T, contiguous
        G = Hy @ Hy.mT
        if best_obj is None:  # W_y, H_y are the starting pair
            best_obj = obj_prev = objective(Bt, Wy, G, Wy, Hy)
            error_init = error_prev = math.sqrt(2 * max(best_obj, 0.0))
        Wn, viol_W = update(
            "W",
            Wy,
            G + l2_reg_W * eye,
            Bt.sub_(l1_reg_W) if l1_reg_W else Bt,
            inner_W,
            sparseness_W,
            check and not constrained,
        )
        # The sweeps leave alone the codes of a component whose atom is zero;
        # extrapolating them would grow them without end.
        Wy_new = _extrapolate(Wn, Wt, beta, torch.diagonal(G)) if extrapolate_W else Wn
        # ---- H from H_y, with the extrapolated W fixed ----------------------
        WX = _codes_t_times_data(A, At, Wy_new)  # (k, m) = W_y^T X
        G = Wy_new @ Wy_new.mT
        Hn, viol_H = update(
            "H",
            Hy,
            G + l2_reg_H * eye,
            WX - l1_reg_H if l1_reg_H else WX,
            inner_H,
            sparseness_H,
            check and not constrained,
        )
        diag_W = torch.diagonal(G)
        obj = objective(WX, Hn, G, Wy_new, Hn)
        if obj > obj_prev:  # restart from the accepted pair, smaller weight
            Wy, Hy = Wt, H
            beta_max, beta = beta_prev, beta / eta
        else:
            if balance and n_iter % _BALANCE_EVERY == 1:
                # Extrapolating both factors drifts along the scale invariance
                # W D, D^-1 H; every 10 iterations, rescale every pair in play
                # by the same D (the products and the objective are unchanged).
                d = _balancing_scale(Wn, Hn)
                Wn, Wt, Wy_new = Wn * d, Wt * d, Wy_new * d
                Hn, H = Hn / d, H / d
            Hy = _extrapolate(Hn, H, beta, diag_W) if extrapolate_H else Hn
            Wt, H, Wy = Wn, Hn, Wy_new
            beta_prev = beta
            beta, beta_max = min(beta_max, gamma * beta), min(1.0, gamma_bar * beta_max)
        obj_prev = obj
        if obj <= best_obj:
            best, best_obj = (Wy_new, Hn), obj
        if not check:
            continue
        # The error test (the one of "mu"): the error fell by less than tol
        # times its first value over the last _CHECK_EVERY iterations.
        slow = False
        if n_iter % _CHECK_EVERY == 0:
            error = math.sqrt(2 * max(best_obj, 0.0))
            slow = (error_prev - error) / max(error_init, _EPS64) < tol
            error_prev = error
            if verbose:
                print(
                    f"Epoch {n_iter:02d} reached after "
                    f"{time.time() - start_time:.3f} seconds, error: {error:f}"
                )
        if constrained:
            if slow:
                break
            continue
        violation = float(viol_W.sum() + viol_H.sum())
        if violation_init is None:
            violation_init = violation
        if verbose:
            print("violation:", violation / max(violation_init, _EPS64))
        # scikit-learn's test alone stopped too early: the extrapolated sweeps
        # shrink the violation long before the error settles (sklearn's digits,
        # k = 32: ratio below 1e-4 at iteration 30, error 390 against 341 at
        # convergence), so the error must have settled too.
        if violation_init == 0 or (violation / violation_init <= tol and slow):
            if verbose:
                print("Converged at iteration", n_iter)
            break
    if verbose:
        print(
            f"Epoch {n_iter:02d} reached after {time.time() - start_time:.3f} seconds."
        )
    return best[0].mT.contiguous(), best[1], n_iter


def fit_nmf(
    X,
    W,
    H,
    *,
    solver="cd",
    beta_loss=2.0,
    max_iter=200,
    tol=1e-4,
    l1_reg_W=0.0,
    l1_reg_H=0.0,
    l2_reg_W=0.0,
    l2_reg_H=0.0,
    sparseness_W=None,
    sparseness_H=None,
    update_H=True,
    shuffle=False,
    generator=None,
    verbose=0,
):
    """Alternating NMF ``X ~ W @ H`` from a starting point, optionally with
    Hoyer sparseness constraints.

    Minimises scikit-learn's objective

    ``D_beta(X, W H) + l1_reg_W |W|_1 + l1_reg_H |H|_1
    + 0.5 l2_reg_W |W|_F^2 + 0.5 l2_reg_H |H|_F^2``

    (``D_2`` is ``0.5 |X - W H|_F^2``) over non-negative ``W`` and ``H``,
    alternating between ``W`` and ``H``. The penalties arrive already scaled
    (scikit-learn's ``_compute_regularization``).

    - ``solver="cd"``: HALS, i.e. scikit-learn's coordinate descent updated one
      whole component at a time (same fixed points); each block update repeats
      the cheap Gram-based sweep a few times per data product (accelerated
      HALS), with extrapolation and restarts (:func:`_fit_her`). Frobenius
      loss only. Stops when the projected-gradient violation falls below
      ``tol`` times its first value and the error has settled as for
      ``"mu"``.
    - ``solver="mu"``: scikit-learn's multiplicative updates for any
      ``beta_loss``. Stops when the error decreases by less than ``tol`` times
      the initial error over 10 iterations.
    - ``sparseness_W`` / ``sparseness_H``: every row of that factor is kept at
      that Hoyer sparseness; the factor is updated by Hoyer's projected
      gradient with step-size adaptation (Frobenius loss only; a few steps per
      iteration with ``"cd"``, one with ``"mu"`` as in Hoyer's ``nmfsc``), the
      other factor by the solver above. Stops like ``"mu"``.

    Convergence is tested every 10 iterations (the only host syncs).

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
        Non-negative data, dense or sparse CSR.
    W : Tensor of shape (n_samples, n_components)
        Starting codes (non-negative; with ``sparseness_W`` they are projected).
    H : Tensor of shape (n_components, n_features)
        Starting atoms (kept fixed when ``update_H=False``).
    solver : {"cd", "mu"}, default="cd"
    beta_loss : float, default=2.0
    max_iter : int, default=200
    tol : float, default=1e-4
    l1_reg_W, l1_reg_H, l2_reg_W, l2_reg_H : float, default=0.0
        Scaled penalties.
    sparseness_W : float in [0, 1] or None, default=None
        Hoyer sparseness of every row of ``W`` (one sample's code).
    sparseness_H : float in [0, 1] or None, default=None
        Hoyer sparseness of every row of ``H`` (one atom).
    update_H : bool, default=True
        ``False`` solves for ``W`` only (:func:`solve_codes`).
    shuffle : bool, default=False
        Visit the components in a random order in each HALS sweep.
    generator : torch.Generator or None, default=None
        CPU generator for ``shuffle``.
    verbose : int, default=0

    Returns
    -------
    W : Tensor of shape (n_samples, n_components)
    H : Tensor of shape (n_components, n_features)
    n_iter : int
        Number of outer iterations done.
    """
    beta = float(beta_loss)
    if not update_H:
        W, n_iter = solve_codes(
            X,
            H,
            W,
            solver=solver,
            beta_loss=beta,
            max_iter=max_iter,
            tol=tol,
            l1_reg_W=l1_reg_W,
            l2_reg_W=l2_reg_W,
            sparseness_W=sparseness_W,
            generator=generator,
        )
        return W, H, n_iter
    if (sparseness_W is not None or sparseness_H is not None) and beta != 2:
        raise ValueError("Sparseness constraints need the Frobenius loss (beta=2).")
    if solver == "cd" and beta != 2:
        raise ValueError("solver='cd' needs the Frobenius loss (beta=2).")
    k = H.shape[0]

    def order():
        # Order of the components in a HALS sweep.
        if shuffle:
            return torch.randperm(k, generator=generator).tolist()
        return list(range(k))

    if solver == "cd":
        return _fit_her(
            X,
            W,
            H,
            max_iter=max_iter,
            tol=tol,
            l1_reg_W=l1_reg_W,
            l1_reg_H=l1_reg_H,
            l2_reg_W=l2_reg_W,
            l2_reg_H=l2_reg_H,
            sparseness_W=sparseness_W,
            sparseness_H=sparseness_H,
            order=order,
            verbose=verbose,
        )

    start_time = time.time()
    n, m = X.shape
    A, At = _as_operator(X)
    blocks = _row_blocks(X)
    H = H.clone().contiguous()
    Wt = W.mT.clone().contiguous()  # (k, n): codes of one component contiguous
    eye = torch.eye(k, dtype=H.dtype, device=H.device)
    if sparseness_W is not None:
        Wt = _cone_project(Wt.mT, sparseness_W).mT.contiguous()
    if sparseness_H is not None:
        H = _cone_project(H, sparseness_H)
    step_W = step_H = None
    gamma = _mu_gamma(beta)
    # From here on the solver is "mu" ("cd" went to _fit_her), with Hoyer's
    # projected gradient (one step an iteration, as in his nmfsc) for a
    # constrained factor; the run stops on the error.
    half_sq_X = 0.5 * _row_sq_norms(X).sum() if beta == 2 else None

    def error():
        W = Wt.mT
        if beta == 2:
            res = _gram_half_sq_error(half_sq_X, _rmatmul(A, At, W).mT, H, Wt @ W)
        else:
            res = _beta_divergence_rows(blocks, W, H, beta).sum()
        return torch.sqrt(2 * res.clamp(min=0))

    if tol > 0:
        error_at_init = previous_error = error()
    for n_iter in range(1, max_iter + 1):
        # ---- W -------------------------------------------------------------
        if beta == 2:
            Bt = _atoms_times_data_t(A, H)  # (k, n) = (X H^T)^T
            G = H @ H.mT
            if sparseness_W is not None:
                G = G + l2_reg_W * eye
                U, step_W, _ = _pg_steps(
                    Wt.mT,
                    G,
                    (Bt - l1_reg_W).mT,
                    sparseness_W,
                    step_W,
                    1,
                    per_row=True,
                    rescale=True,
                )
                Wt = U.mT.contiguous()
            else:
                Wt = _mu_apply(Wt, Bt, G @ Wt, l1_reg_W, l2_reg_W, gamma)
        else:
            num, den = _mu_terms(blocks, Wt.mT, H, beta, "W")
            Wt = _mu_apply(Wt, num.mT, den.mT, l1_reg_W, l2_reg_W, gamma)
            if beta < 1:
                Wt = torch.where(Wt < _EPS64, 0.0, Wt)
        # ---- H -------------------------------------------------------------
        if beta == 2:
            W = Wt.mT
            Bt = _codes_t_times_data(A, At, Wt)  # (k, m) = W^T X
            G = Wt @ W
            if sparseness_H is not None:
                G = G + l2_reg_H * eye
                H, step_H, _ = _pg_steps(
                    H,
                    G,
                    Bt - l1_reg_H,
                    sparseness_H,
                    step_H,
                    1,
                    per_row=False,
                )
            else:
                H = _mu_apply(H, Bt, G @ H, l1_reg_H, l2_reg_H, gamma)
        else:
            num, den = _mu_terms(blocks, Wt.mT, H, beta, "H")
            H = _mu_apply(H, num, den, l1_reg_H, l2_reg_H, gamma)
            if beta <= 1:
                H = torch.where(H < _EPS64, 0.0, H)

        # ---- convergence ---------------------------------------------------
        if tol > 0 and n_iter % _CHECK_EVERY == 0:
            err = error()
            if verbose:
                print(
                    f"Epoch {n_iter:02d} reached after "
                    f"{time.time() - start_time:.3f} seconds, error: {float(err):f}"
                )
            if float((previous_error - err) / error_at_init) < tol:
                break
            previous_error = err
    if verbose and tol == 0:
        print(
            f"Epoch {n_iter:02d} reached after {time.time() - start_time:.3f} seconds."
        )
    return Wt.mT.contiguous(), H, n_iter


def solve_codes(
    X,
    H,
    W=None,
    *,
    solver="cd",
    beta_loss=2.0,
    max_iter=200,
    tol=1e-4,
    l1_reg_W=0.0,
    l2_reg_W=0.0,
    sparseness_W=None,
    generator=None,
):
    """Codes ``W >= 0`` with ``X ~ W @ H`` for fixed atoms ``H``, row by row.

    Minimises ``D_beta(X, W H) + l1_reg_W |W|_1 + 0.5 l2_reg_W |W|_F^2`` over
    ``W`` alone (non-negative least squares for ``beta=2``). Every sample's code
    depends on that sample only: the solver's iterations, step sizes and
    stopping rule are per row, and a row stops being updated once its own
    convergence test holds (tested every 10 iterations). So the codes of a
    sample do not depend on the other samples of the batch.

    - ``solver="cd"``: HALS sweeps; a row stops when its projected-gradient
      violation falls below ``tol`` times its first value.
    - ``solver="mu"``: multiplicative updates for any ``beta_loss``; a row
      stops when its error decreases by less than ``tol`` times its initial
      error over 10 iterations.
    - ``sparseness_W``: Hoyer's projected gradient with a step size per row
      (Frobenius loss); a row stops like with ``"mu"``.

    Parameters
    ----------
    X : Tensor of shape (n_samples, n_features)
        Non-negative data, dense or sparse CSR.
    H : Tensor of shape (n_components, n_features)
        Fixed atoms.
    W : Tensor of shape (n_samples, n_components) or None, default=None
        Starting codes. ``None`` starts from zeros (``"cd"`` and the sparseness
        constraint) or, for ``"mu"``, from ``sqrt(mean(x_i) / n_components)``
        for sample ``i`` (scikit-learn uses the mean of the whole batch).
    solver : {"cd", "mu"}, default="cd"
    beta_loss : float, default=2.0
    max_iter : int, default=200
    tol : float, default=1e-4
        ``0`` runs exactly ``max_iter`` iterations.
    l1_reg_W, l2_reg_W : float, default=0.0
        Scaled penalties.
    sparseness_W : float in [0, 1] or None, default=None
        Hoyer sparseness of every code vector (row of ``W``).
    generator : torch.Generator or None, default=None
        Unused (the solvers here are deterministic); kept for symmetry with
        :func:`fit_nmf`.

    Returns
    -------
    W : Tensor of shape (n_samples, n_components)
    n_iter : int
        Largest number of iterations any row needed.
    """
    beta = float(beta_loss)
    if sparseness_W is not None and beta != 2:
        raise ValueError("Sparseness constraints need the Frobenius loss (beta=2).")
    n, m = X.shape
    k = H.shape[0]
    dtype, device = H.dtype, H.device
    H = H.contiguous()
    if W is None and sparseness_W is not None:
        # Warm start: the unconstrained codes (HALS), projected and rescaled
        # below. Far better than the projection of zeros: the projected
        # gradient on the non-convex constraint set then starts next to a good
        # local minimum (lower error in a fraction of the steps on MNIST).
        W, _ = solve_codes(
            X,
            H,
            solver="cd",
            max_iter=max_iter,
            tol=tol,
            l1_reg_W=l1_reg_W,
            l2_reg_W=l2_reg_W,
        )
    if W is None:
        if solver == "mu" and sparseness_W is None:
            start = torch.sqrt(_row_mean(X) / k).to(dtype)
            W = start.unsqueeze(1).expand(n, k)
        else:
            W = torch.zeros((n, k), dtype=dtype, device=device)
    out = W.clone().contiguous()
    eye = torch.eye(k, dtype=dtype, device=device)
    G = H @ H.mT
    Gr = G + l2_reg_W * eye
    gamma = _mu_gamma(beta)
    pg = sparseness_W is not None
    hals = solver == "cd" and not pg
    inner = _n_inner_sweeps(n, m, k) if solver == "cd" else 1
    if pg:
        out = _cone_project(out, sparseness_W)

    # State of the rows still iterating ("active"), compacted at every check.
    active = torch.arange(n, device=device)
    Xa = X
    # A copy even when out.mT is already contiguous (one component, one row).
    Wa = out.mT.clone(memory_format=torch.contiguous_format) if hals else out
    Ba = None
    if beta == 2:
        Ba = X @ H.mT  # (n, k); the L1 penalty enters MU's denominator instead
        if solver == "cd" or pg:
            Ba = Ba - l1_reg_W
        if hals:
            Ba = Ba.mT.contiguous()
    blocks = _row_blocks(Xa) if beta != 2 else None
    half_sq = 0.5 * _row_sq_norms(X) if pg else None
    step = None
    if pg:
        out = _best_scale(out, out @ Gr, Ba)[0]
        Wa = out

    def measure(Wa):
        """Per-row error, ``sqrt(2 * objective)`` (error-based tests)."""
        if pg:
            obj = _pg_steps(
                Wa, Gr, Ba, sparseness_W, step, 0, per_row=True, const=half_sq
            )[2]
        else:
            obj = _beta_divergence_rows(
                blocks if blocks is not None else _row_blocks(Xa), Wa, H, beta
            )
        return torch.sqrt(2 * obj.clamp(min=0))

    first = prev = None
    if not hals and tol > 0:
        first = prev = measure(Wa)
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        if pg:
            Wa, step, obj = _pg_steps(
                Wa,
                Gr,
                Ba,
                sparseness_W,
                step,
                inner,
                per_row=True,
                const=half_sq,
                rescale=True,
            )
        elif hals:
            check = tol > 0 and (it == 1 or it % _CHECK_EVERY == 0)
            viol = _hals_sweeps(Wa, Gr, Ba, inner, list(range(k)), check)
        else:
            if beta == 2:
                num, den = Ba, Wa @ G
            else:
                num, den = _mu_terms(blocks, Wa, H, beta, "W")
            Wa = _mu_apply(Wa, num, den, l1_reg_W, l2_reg_W, gamma)
            if beta < 1:
                Wa = torch.where(Wa < _EPS64, 0.0, Wa)
        if tol == 0:
            continue
        if hals and it == 1:
            first = viol
            done = first == 0
        elif it % _CHECK_EVERY == 0:
            if hals:
                done = (viol <= tol * first) | (first == 0)
            else:
                cur = torch.sqrt(2 * obj.clamp(min=0)) if pg else measure(Wa)
                done = ((prev - cur) < tol * first) | (first == 0)
                prev = cur
        else:
            continue
        if bool(done.any()):
            # Finished rows leave the iteration: later iterations cannot touch
            # them, whatever the other rows of the batch do.
            keep = ~done
            fin = active[done]
            out[fin] = Wa[:, done].mT if hals else Wa[done]
            active, first = active[keep], first[keep]
            prev = prev[keep] if prev is not None else None
            if len(active) == 0:
                break
            Wa = Wa[:, keep].contiguous() if hals else Wa[keep]
            if Ba is not None:
                Ba = Ba[:, keep].contiguous() if hals else Ba[keep]
            if pg:
                step, half_sq = step[keep], half_sq[keep]
            Xa = _take_rows(Xa, keep.nonzero().squeeze(1))
            blocks = _row_blocks(Xa) if beta != 2 else None
    if len(active):
        out[active] = Wa.mT if hals else Wa
    return out, n_iter


def _row_mean(X):
    """Mean of every row of ``X`` (dense or CSR)."""
    return _row_sums(X) / X.shape[1]


def _row_sums(X):
    """Sum of every row of ``X`` (dense or CSR)."""
    if X.layout == torch.strided:
        return X.sum(1)
    crow = X.crow_indices()
    rows = torch.repeat_interleave(
        torch.arange(X.shape[0], device=X.device), crow[1:] - crow[:-1]
    )
    out = torch.zeros(X.shape[0], dtype=X.dtype, device=X.device)
    return out.index_add_(0, rows, X.values())


def _take_rows(X, idx):
    """Rows ``idx`` of ``X``, in ``X``'s layout (dense or CSR)."""
    if X.layout == torch.strided:
        return X[idx]
    crow, col, val = X.crow_indices(), X.col_indices(), X.values()
    counts = (crow[1:] - crow[:-1])[idx]
    new_crow = torch.zeros(len(idx) + 1, dtype=crow.dtype, device=X.device)
    torch.cumsum(counts, 0, out=new_crow[1:])
    starts = crow[:-1][idx]
    offsets = torch.arange(
        int(new_crow[-1]), device=X.device
    ) - torch.repeat_interleave(new_crow[:-1], counts)
    pos = torch.repeat_interleave(starts, counts) + offsets
    return torch.sparse_csr_tensor(
        new_crow,
        col[pos],
        val[pos],
        size=(len(idx), X.shape[1]),
        check_invariants=False,
    )
