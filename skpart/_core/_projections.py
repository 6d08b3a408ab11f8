"""Batched projections onto Hoyer sparseness sets and the non-negative orthant."""

import math

import torch

from ._device import sync_free


def l1_for_sparseness(sparseness, n, l2=1.0):
    """L1 norm that gives a vector of length ``n`` and L2 norm ``l2`` the
    Hoyer sparseness ``sparseness``.

    Hoyer's sparseness is ``(sqrt(n) - L1/L2) / (sqrt(n) - 1)``, so
    ``L1 = L2 * (sqrt(n) - (sqrt(n) - 1) * sparseness)``.
    """
    sqrt_n = math.sqrt(n)
    return l2 * (sqrt_n - (sqrt_n - 1.0) * sparseness)


def project_nonnegative(x):
    """Clip negative entries of ``x`` to zero, in place, and return ``x``."""
    return x.clamp_(min=0)


def project_l1_l2(x, l1, l2, *, max_iter=None):
    """Euclidean projection of every row of ``x`` onto the non-negative vectors
    with L1 norm ``l1`` and L2 norm ``l2``.

    The projection has the form ``beta * max(x - alpha, 0)`` (Thom & Palm,
    2013), its support the ``k`` largest entries of the row for one ``k``.
    Two exact methods find ``alpha``, chosen by
    :func:`~skpart._core._device.sync_free`:

    - off the CPU, the sort-based method of Thom and Palm: every row is sorted
      once, the offset of every candidate support is solved in closed form
      from the running sums, and the one consistent with its support is kept.
      A fixed sequence of kernels, whatever the values: no read-back to the
      host, so it can be queued (or captured in a CUDA graph) without waiting
      for the device.
    - on the CPU, where reading a value back costs nothing but a sort costs
      as much as the whole iteration, Hoyer's (2004) active-set iteration,
      written in closed form and run on all rows at once: on the current
      support the quadratic ``(L1 - k a)^2 = r^2 (L2^2 - 2 a L1 + k a^2)`` is
      solved exactly, the entries that fall below the new offset leave the
      support, and the loop stops when no support changes (about ten passes
      on MNIST-sized rows). Every row is then checked against its target
      norms, and a row that misses them (rounding on near-ties in float32) is
      recomputed by the sort-based method in float64.

    Both are exact up to rounding; they differ in the last bits.

    Parameters
    ----------
    x : Tensor of shape (n_rows, n)
        Vectors to project (any sign).
    l1, l2 : float or Tensor of shape (n_rows,)
        Target norms, with ``l2 <= l1 <= sqrt(n) * l2``.
    max_iter : int or None
        Cap on the active-set passes (default ``n``, which is never reached).

    Returns
    -------
    Tensor of shape (n_rows, n)
        Non-negative rows with the requested norms, same dtype and device as
        ``x``.

    Notes
    -----
    The projection is not unique when more of a row's largest entries tie than
    the target support can hold (an all-zero or constant row, or a binary
    image at high sparseness). Such rows are lowered by a ramp far below the
    data's resolution, the earlier entry of a tie counting as larger, so the
    result is deterministic. The two ends are exact: ``l1 == sqrt(n) * l2``
    (sparseness 0) gives the constant row and ``l1 == l2`` (sparseness 1) a
    single non-zero entry at the row's first maximum.
    """
    n_rows, n = x.shape
    queued = sync_free(x.device)
    dtype = torch.float64 if queued else x.dtype
    l1 = _column(l1, n_rows, dtype, x.device)
    l2 = _column(l2, n_rows, dtype, x.device)
    r2 = (l1 / l2) ** 2
    max_iter = n if max_iter is None else max_iter
    rows = max(16, _CPU_CHUNK_BYTES // (n * x.element_size()))
    if x.device.type == "cpu" and n_rows > rows:
        # Row blocks that stay in cache for all the passes of the iteration.
        return torch.cat(
            [
                _project_block(
                    x[i : i + rows],
                    l1[i : i + rows],
                    l2[i : i + rows],
                    r2[i : i + rows],
                    max_iter,
                    queued,
                )
                for i in range(0, n_rows, rows)
            ]
        )
    return _project_block(x, l1, l2, r2, max_iter, queued)


def _column(value, n_rows, dtype, device):
    """A norm target as a column of ``n_rows`` values: a number is filled in
    on the device (no copy from the host)."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype).expand(n_rows)[:, None]
    return torch.full((n_rows, 1), value, dtype=dtype, device=device)


#: Bytes of a CPU row block of :func:`project_l1_l2`: large enough that the
#: per-call overhead of the active-set loop is paid over many rows, small
#: enough that a block stays in cache (``bench_sparse_nmf_hoyer.md`` records
#: the choice).
_CPU_CHUNK_BYTES = 1 << 20


def _project_block(x, l1, l2, r2, max_iter, queued):
    """:func:`project_l1_l2` on one block of rows (norms as column tensors);
    ``queued``: the sync-free method."""
    if queued:
        return _project_sort_based(x, l1, r2)
    n = x.shape[1]
    row_max = x.amax(dim=1, keepdim=True)
    dense_end = (r2 >= n * (1 - 1e-6)).squeeze(1)
    sparse_end = (r2 <= 1 + 1e-6).squeeze(1)
    ends = dense_end | sparse_end
    # Entries equal to the row maximum; sign() sums are far faster than
    # boolean counts in torch's CPU kernels.
    n_top = n - torch.sign(row_max - x).sum(dim=1, keepdim=True)
    tied = (n_top >= r2).squeeze(1)

    out, stuck = _project_active_set(x, l1, r2, row_max, max_iter)
    # Rows with tied maxima, rows where rounding stopped the iteration, and rows
    # whose norms came out wrong (or NaN) are redone in float64.
    tol = 1e-5 if x.dtype == torch.float32 else 1e-10
    norm = torch.linalg.vector_norm(out, dim=1, keepdim=True)
    off = ~((norm - l2).abs() <= tol * l2).squeeze(1)
    redo = (tied | stuck | off) & ~ends
    if redo.any():
        out[redo] = _project_tie_broken(x[redo], l1[redo], r2[redo], max_iter)
    if dense_end.any():
        out[dense_end] = (l1[dense_end] / n).expand(-1, n)
    if sparse_end.any():
        arg_max = x[sparse_end].argmax(dim=1, keepdim=True)
        onehot = torch.zeros_like(x[sparse_end])
        onehot.scatter_(1, arg_max, l1[sparse_end])
        out[sparse_end] = onehot
    return out


def _project_tie_broken(x, l1, r2, max_iter):
    """Exact projection in float64 with ties broken by position.

    Entries are lowered by a ramp far below the data's resolution (the earlier
    entry of a tie counts as larger), then projected by the active-set
    iteration; rows that rounding still stops go to the sort-based method.
    """
    work = torch.float64
    n = x.shape[1]
    x64 = x.to(work)
    row_max = x64.amax(dim=1, keepdim=True)
    scale = row_max - x64.amin(dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    x64 = x64 - 1e-9 * scale * torch.arange(n, dtype=work, device=x.device) / n
    l1, r2 = l1.to(work), r2.to(work)
    out, stuck = _project_active_set(
        x64, l1, r2, x64.amax(1, keepdim=True), max_iter, centered=True
    )
    norm = torch.linalg.vector_norm(out, dim=1, keepdim=True)
    target = torch.sqrt(l1 * l1 / r2)
    stuck |= ~((norm - target).abs() <= 1e-10 * target).squeeze(1)
    if stuck.any():
        out[stuck] = _project_sorted(x64[stuck], l1[stuck], r2[stuck])
    return out.to(x.dtype)


def _quadratic_offset(k, s1, s2, r2):
    """Offset ``a`` with ``(s1 - k a)^2 = r2 (s2 - 2 a s1 + k a^2)``, below the
    mean ``s1 / k`` (``s1``, ``s2``: sum and sum of squares of the support)."""
    disc = torch.addcmul(k * s2, s1, s1, value=-1).clamp_(min=0)
    disc = disc.div_((k - r2).clamp_(min=1e-12)).sqrt_()
    return (s1 - torch.sqrt(r2) * disc).div_(k)


def _project_active_set(x, l1, r2, row_max, max_iter, *, centered=False):
    """Hoyer's active-set iteration in closed form, all rows at once.

    The support sums are taken either of ``d = max(z - alpha, 0)`` (fast: four
    passes an iteration) or, with ``centered=True``, of ``z = x - max(x)`` on
    the support (one pass more, but free of the cancellation that near-ties
    cause when ``alpha`` is far from the entries). Small rows make the loop
    bound by the number of torch calls, so each pass makes as few as it can:
    the rounding guard below costs one test per pass until it fires.
    """
    z = x - row_max
    zz = z * z if centered else None
    # Start just below every entry (full support). The margin is relative to
    # the row's range so that the sums below do not cancel at any scale.
    z_min = z.amin(dim=1, keepdim=True)
    alpha = z_min + 1e-3 * torch.where(z_min < 0, z_min, -torch.ones_like(z_min))
    alpha_prev, k_prev = alpha, None
    stuck = None
    d = torch.empty_like(z)
    for it in range(max_iter):
        torch.sub(z, alpha, out=d).relu_()
        k = torch.sign(d).sum(dim=1, keepdim=True)
        if k_prev is not None:
            # Rounding on near-ties can push a support below the size the target
            # needs (k <= r^2): such a row goes back one step and stays there;
            # the caller redoes it exactly.
            low = k <= r2
            if stuck is not None or bool(low.any()):
                stuck = low if stuck is None else stuck | low
                alpha = torch.where(stuck, alpha_prev, alpha)
                k = torch.where(stuck, k_prev, k)
                torch.sub(z, alpha, out=d).relu_()
            if torch.equal(k, k_prev):
                break
        if centered:
            mask = torch.sign(d)
            s1 = torch.linalg.vecdot(mask, z).unsqueeze(1)
            s2 = torch.linalg.vecdot(mask, zz).unsqueeze(1)
            new = _quadratic_offset(k, s1, s2, r2)
        else:
            s1 = d.sum(dim=1, keepdim=True)
            s2 = torch.linalg.vecdot(d, d).unsqueeze(1)
            new = _quadratic_offset(k, s1, s2, r2).add_(alpha)
        # The first solve, on the full support, may move the offset down; after
        # it the offset only rises (supports only shrink).
        alpha_prev, k_prev = alpha, k
        alpha = new if it == 0 else torch.maximum(new, alpha)
    d = torch.relu_(z - alpha)
    if stuck is None:
        stuck = torch.zeros_like(alpha, dtype=torch.bool)
    return d * (l1 / d.sum(dim=1, keepdim=True)), stuck.squeeze(1)


def _sorted_solve(x, l1, r2, *, ramp_all=False):
    """The sort-based method of :func:`project_l1_l2` in float64, up to the
    last step: the projected rows in descending order of ``x`` (stable: ties
    by position) and that order. No data-dependent control flow.

    The support size is the ``k`` with ``y_(k+1) <= alpha_k < y_k`` (and
    ``k > r2``: a support of ``k`` entries has at most the ratio ``sqrt(k)``);
    rounding can leave every ``k`` slightly off, so the least violation wins
    (the first on a tie). A row whose largest entries agree within ``1e-9``
    of its range in more places than the target support can hold (and no
    ``k`` then fits) is first lowered by a ramp of that size along the
    positions (the ramp of the CPU method): the sorted order of tied entries
    is their order of position, which the ramp keeps, and the earlier entry
    counts as larger. With ``ramp_all`` every row is lowered instead by a
    ramp along the sorted order (the CPU method's last resort, for rows
    that are tie-broken already).
    """
    n = x.shape[1]
    work = torch.float64
    y, order = torch.sort(x, dim=1, descending=True, stable=True)
    y = y.to(work)
    y = y - y[:, :1]  # shift: the largest entry is 0
    scale = -y[:, -1:]
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    if ramp_all:
        y = y - 1e-9 * scale * torch.arange(n, dtype=work, device=x.device) / n
    else:
        n_top = (y >= -1e-9 * scale).sum(dim=1, keepdim=True)
        y = torch.where(n_top >= r2, y - 1e-9 * scale * order.to(work) / n, y)
    k = torch.arange(1, n + 1, dtype=work, device=x.device)
    alpha = _quadratic_offset(k, torch.cumsum(y, 1), torch.cumsum(y * y, 1), r2)
    y_next = torch.cat([y[:, 1:], torch.full_like(y[:, :1], -torch.inf)], dim=1)
    violation = (alpha - y).clamp(min=0) + (y_next - alpha).clamp(min=0)
    violation = torch.where(k > r2, violation, torch.inf)
    a = torch.gather(alpha, 1, torch.argmin(violation, dim=1, keepdim=True))
    p = torch.relu(y - a)
    return p * (l1 / p.sum(dim=1, keepdim=True)), order


def _project_sorted(x, l1, r2):
    """Exact sort-based projection (float64), ties broken by position."""
    work = torch.float64
    p, order = _sorted_solve(x, l1.to(work), r2.to(work), ramp_all=True)
    return torch.empty_like(p).scatter_(1, order, p).to(x.dtype)


def _project_sort_based(x, l1, r2):
    """The sync-free method of :func:`project_l1_l2` on one block (``l1``,
    ``r2``: float64 columns), the ends included: a fixed sequence of kernels,
    no read-back to the host."""
    n = x.shape[1]
    p, order = _sorted_solve(x, l1, r2)
    # Sparseness 1: the first maximum alone (first in the stable order);
    # sparseness 0: the constant row.
    first = torch.zeros_like(p[:1]).index_fill_(1, order.new_zeros(1), 1.0) * l1
    p = torch.where(r2 <= 1 + 1e-6, first, p)
    p = torch.where(r2 >= n * (1 - 1e-6), l1 / n, p)
    return torch.empty_like(x).scatter_(1, order, p.to(x.dtype))


def project_sparseness(x, sparseness, l2=None):
    """Project every row of ``x`` to Hoyer sparseness ``sparseness``.

    Parameters
    ----------
    x : Tensor of shape (n_rows, n)
    sparseness : float in [0, 1]
        Target Hoyer sparseness of each row.
    l2 : float, Tensor of shape (n_rows,) or None
        L2 norm of each projected row. ``None`` keeps each row's current L2 norm
        (an all-zero row then gets norm 1, so every row meets the target).

    Returns
    -------
    Tensor of shape (n_rows, n)
    """
    n = x.shape[1]
    if l2 is None:
        l2 = torch.linalg.vector_norm(x, dim=1)
        l2 = torch.where(l2 > 0, l2, torch.ones_like(l2))
    return project_l1_l2(x, l1_for_sparseness(sparseness, n, l2), l2)
