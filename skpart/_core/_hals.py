"""HALS: exact coordinate minimisation of a non-negative quadratic."""

import contextlib

import torch

from . import _triton_hals

#: Bytes of a (k, block) slab of the factor in a CPU HALS sweep (cache-sized;
#: larger slabs mean fewer but longer parallel regions).
SWEEP_BYTES = 1 << 22
#: Components per matrix product in a blocked HALS sweep, and the number of
#: problem rows from which the blocked sweep is used on CPU (below it the
#: one-at-a-time sweep has fewer small ops).
HALS_BLOCK = 16
BLOCKED_MIN_WIDTH = 4096


@contextlib.contextmanager
def one_thread(device):
    """Run the block with one intra-op thread on CPU (restored afterwards).

    The HALS sweeps and the projected-gradient steps are many small ops
    (``k`` x ``n / k`` or ``n x k`` at a time): their parallel regions are too
    short to pay for the fork and the barrier, and on a shared CPU a barrier
    waits for a descheduled thread. The large products outside these blocks
    keep torch's thread setting.
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


def inverse_diagonal(G):
    """``1 / diag(G)``, with 0 where the diagonal is 0 (a component with no
    partner: its gradient is zero and it is left alone)."""
    diag = torch.diagonal(G)
    return torch.where(diag > 0, 1.0 / diag.clamp(min=torch.finfo(G.dtype).tiny), 0)


def hals_sweeps(Ut, G, Bt, n_sweeps, order, want_violation):
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

    On CUDA with Triton installed, the sweeps run as one fused kernel
    (:func:`~skpart._core._triton_hals.hals_sweeps_triton`); this function's
    torch body is its reference and its fallback.
    """
    if Ut.is_cuda and _triton_hals.available(Ut):
        # One fused launch for all the sweeps instead of about 3 k per sweep
        # (the same iterates up to the order of the sums).
        return _triton_hals.hals_sweeps_triton(
            Ut, G, Bt, n_sweeps, order, want_violation
        )
    k, n = Ut.shape
    inv = inverse_diagonal(G)
    if Ut.device.type == "cpu":
        width = max(256, SWEEP_BYTES // (k * Ut.element_size()))
    else:
        width = n
    violation = (
        torch.zeros(n, dtype=Ut.dtype, device=Ut.device) if want_violation else None
    )
    sweeps = (
        _hals_blocked
        if Ut.device.type == "cpu" and n >= BLOCKED_MIN_WIDTH
        else _hals_slabs
    )
    with one_thread(Ut.device):
        sweeps(Ut, G, Bt, n_sweeps, order, inv, width, violation)
    return violation


def _hals_slabs(Ut, G, Bt, n_sweeps, order, inv, width, violation):
    """The sweeps of :func:`hals_sweeps`, one slab of ``width`` columns at a
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
    """The sweeps of :func:`hals_sweeps` with the gradients of
    ``HALS_BLOCK`` components at a time from one matrix product.

    At the start of a block the gradients ``G[b] @ U - B[b]`` of its components
    come from one GEMM; inside the block, each update ``delta`` of a component
    is added to the gradients of the block's later components (a rank-one
    update). The iterates are those of the one-at-a-time sweep (up to
    rounding), but most of the work is a GEMM instead of ``k`` matrix-vector
    products that each read the whole factor. Single-threaded like the plain
    sweep (see :func:`one_thread`).
    """
    want_violation = violation is not None
    n = Ut.shape[1]
    blocks = []
    for b0 in range(0, len(order), HALS_BLOCK):
        comps = order[b0 : b0 + HALS_BLOCK]
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


def n_inner_sweeps(n_rows, n_other, k):
    """Sweeps per HALS block update (Gillis and Glineur's accelerated HALS).

    A sweep costs about ``n_rows * k**2`` operations while the products that
    prepare it cost ``n_rows * n_other * k``, with ``n_other`` the entries of
    the data per problem row (the other dimension for dense data, the mean
    stored entries for sparse data); repeating the cheap sweep a few times
    per product makes each outer iteration closer to an exact block
    minimisation. The count depends only on the shapes (no host sync).
    """
    rho = 1.0 + n_other / (k + 1.0)
    return int(max(1, min(4, 1 + 0.1 * rho)))
