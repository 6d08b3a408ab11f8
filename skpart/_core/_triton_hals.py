"""HALS sweeps of the codes as one fused Triton kernel (optional, CUDA only).

:func:`~skpart._core._hals.hals_sweeps` updates one component of the factor at
a time: on a GPU each of the ``k`` updates of a sweep is a handful of small
kernels, so a sweep costs ~``k`` launches however small the problem. The
problem rows (the columns of ``Ut``, one per sample) are independent, so one
kernel can own a tile of them and run every update of every sweep without
leaving the chip: :func:`hals_sweeps_triton` does the same sweeps as
:func:`~skpart._core._hals.hals_sweeps` in a single launch, without host
synchronisation (it can be captured in a CUDA graph once compiled, with the
order given as a device tensor).

Design. One program owns ``BLOCK_N`` columns of ``Ut`` and holds them, padded
to ``K_PAD`` (``k`` rounded up to a power of two) rows, in registers for the
whole call; every update reads one row of ``G`` and one row of ``Bt`` (``G``
is read by every program and stays in the L1/L2 cache, where Triton gives no
explicit shared memory). An update is a product and a reduction over the
tile's rows, and a select that writes the new row into the tile: there is no
dynamic indexing of registers, so the work per update is ``K_PAD x BLOCK_N``
whatever the component. The tile size keeps a program's registers bounded as
``k`` grows (:func:`tile_shape`): fewer columns per program for larger ``k``,
more warps past ``k = 256``.

Limits. At most :data:`MAX_K` components (beyond, the padded column no longer
fits a program's registers: use the torch sweeps); float32 and float64; no
autograd. The result is deterministic on a given GPU (no atomics) but not
bitwise the torch sweeps': the products ``G[t] @ U`` are summed in another
order (the tests ask ~1e-5 relative in float32 and ~1e-12 in float64).

Triton is optional. This module never imports it at import time: the kernel is
built on first use (:func:`available` says whether it can be), so importing
skpart never imports Triton, and the torch implementation stays the reference
and the fallback. Under Triton's interpreter (``TRITON_INTERPRET=1``, set
before Triton's first import) the kernel runs on CPU tensors, slowly but with
the same arithmetic; the tests check it against the torch sweeps that way.
"""

# Postponed annotations: the kernel's ``constexpr`` annotations stay the string
# "constexpr", which every Triton 3 reads as a compile-time constant (the
# interpreter of Triton 3.1 does not read "tl.constexpr"), and ``tl`` and
# ``constexpr`` can be bound on first use.
from __future__ import annotations

import contextlib
import functools
import os

import torch

#: ``triton.language`` and ``triton.language.constexpr``, bound by
#: :func:`_build` on first use (the kernel reads them as module globals, as
#: Triton expects).
tl = constexpr = None

#: Largest number of components the kernel takes (the whole padded column of
#: the factor stays in registers; beyond this, fall back to the torch sweeps).
MAX_K = 512
#: Bytes of the factor's tile held by one program when it has at least
#: ``MIN_BLOCK_N`` columns: with the temporaries of an update it fits in the
#: registers of 8 warps with room for two programs per multiprocessor.
TILE_BYTES = 16384
#: Bounds on the number of columns (problem rows) per program.
MIN_BLOCK_N, MAX_BLOCK_N = 16, 128
#: Bytes of the tile per thread that set the number of warps (within
#: ``[MIN_WARPS, MAX_WARPS]``).
THREAD_BYTES = 64
MIN_WARPS, MAX_WARPS = 4, 16

_INTERPRET_VALUES = ("1", "true", "on", "yes")


def _hals_kernel(
    U_ptr,
    G_ptr,
    B_ptr,
    inv_ptr,
    order_ptr,
    viol_ptr,
    k,
    n,
    n_order,
    n_sweeps,
    stride_uk,
    stride_un,
    stride_gk,
    stride_gj,
    stride_bk,
    stride_bn,
    K_PAD: constexpr,
    BLOCK_N: constexpr,
    WANT_VIOLATION: constexpr,
):
    """One program: all the sweeps of ``BLOCK_N`` problem rows.

    The tile ``U[:, cols]`` (``K_PAD x BLOCK_N``, rows ``>= k`` and columns
    ``>= n`` padded with zeros) is loaded once, updated in registers and
    stored once. Component ``t``'s update reads row ``t`` of ``G`` (the same
    for every program, so it is served from the cache) and row ``t`` of the
    tile's ``B``:

    - ``grad = G[t] @ U - B[t]``: a product and a reduction over the
      components (the padded rows of ``G[t]`` and ``U`` are zero);
    - in the first sweep, with ``WANT_VIOLATION``, the projected gradient
      ``|grad|``, or ``|min(grad, 0)|`` where ``u_t == 0``, is added to the
      column's violation (``u_t`` is taken out of the tile by a masked sum,
      which adds only zeros to it);
    - ``u_t <- max(0, u_t - grad * inv[t])`` is written into row ``t`` of the
      tile by a select over the rows (no dynamic indexing of a register
      tile). ``inv[t] == 0`` (a zero diagonal) leaves ``u_t`` as it is.
    """
    pid = tl.program_id(0)
    rows = tl.arange(0, K_PAD).to(tl.int64)
    cols = pid.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    row_ok = rows < k
    col_ok = cols < n
    tile_ok = row_ok[:, None] & col_ok[None, :]
    u_ptrs = U_ptr + rows[:, None] * stride_uk + cols[None, :] * stride_un
    U = tl.load(u_ptrs, mask=tile_ok, other=0.0)
    viol = tl.zeros([BLOCK_N], dtype=U.dtype)
    for sweep in range(n_sweeps):
        for i in range(n_order):
            t = tl.load(order_ptr + i).to(tl.int64)
            g = tl.load(
                G_ptr + t * stride_gk + rows * stride_gj, mask=row_ok, other=0.0
            )
            b = tl.load(
                B_ptr + t * stride_bk + cols * stride_bn, mask=col_ok, other=0.0
            )
            inv_t = tl.load(inv_ptr + t)
            grad = tl.sum(g[:, None] * U, axis=0) - b
            is_t = (rows == t)[:, None]
            if WANT_VIOLATION:
                if sweep == 0:
                    u_t = tl.sum(tl.where(is_t, U, 0.0), axis=0)
                    pg = tl.where(u_t == 0, tl.minimum(grad, 0.0), grad)
                    viol += tl.abs(pg)
            # NaN propagates as in torch's clamp (max.f32 would turn it to 0).
            new = tl.maximum(
                U - grad[None, :] * inv_t, 0.0, propagate_nan=tl.PropagateNan.ALL
            )
            U = tl.where(is_t, new, U)
    tl.store(u_ptrs, U, mask=tile_ok)
    if WANT_VIOLATION:
        tl.store(viol_ptr + cols, viol, mask=col_ok)


@functools.cache
def _triton():
    """The ``triton`` module, or ``None`` where it does not import (absent,
    or an installation that fails to load)."""
    try:
        import triton
        import triton.language  # noqa: F401
    except (ImportError, OSError, RuntimeError):
        return None
    return triton


def _interpret_requested():
    """Whether ``TRITON_INTERPRET`` asks for Triton's interpreter (read at
    every call, as Triton does, without importing Triton)."""
    value = os.environ.get("TRITON_INTERPRET", "0").strip().lower()
    return value in _INTERPRET_VALUES


def _interpreter_ready(triton):
    """Whether ``triton.language`` was imported under the interpreter.

    Its own functions (``tl.sum``, ...) are jitted when ``triton`` is first
    imported, for the interpreter or for the GPU as ``TRITON_INTERPRET`` says
    then; a kernel interpreted later calls them, and fails if they were jitted
    for the GPU. So the variable must be set before Triton's first import.
    """
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:
        return False
    return isinstance(getattr(triton.language, "sum", None), InterpretedFunction)


def available(Ut):
    """Whether :func:`hals_sweeps_triton` can run the sweeps of ``Ut``.

    True when ``Ut`` is a float32 or float64 matrix with at most
    :data:`MAX_K` rows and either lives on a CUDA device with Triton
    importable, or Triton's interpreter is switched on (``TRITON_INTERPRET=1``
    set before Triton's first import: the tests on CPU tensors). Triton is
    imported only in those two cases: on a CPU tensor without the interpreter
    the answer is False at no cost.

    Parameters
    ----------
    Ut : Tensor of shape (k, n)
        The factor that :func:`hals_sweeps_triton` would update.

    Returns
    -------
    bool
    """
    if Ut.dim() != 2 or Ut.shape[0] > MAX_K:
        return False
    if Ut.dtype not in (torch.float32, torch.float64):
        return False
    interpret = _interpret_requested()
    if Ut.device.type != "cuda" and not interpret:
        return False
    triton = _triton()
    if triton is None:
        return False
    return not interpret or _interpreter_ready(triton)


@functools.cache
def _build(interpret):
    """The jitted kernel, for Triton's interpreter or for the GPU.

    ``triton.jit`` chooses between the two from ``TRITON_INTERPRET`` when it
    is applied, so the kernel is built once per mode, at the first call made
    in that mode.
    """
    global tl, constexpr
    triton = _triton()
    tl = triton.language
    constexpr = tl.constexpr
    return triton.jit(_hals_kernel)


def tile_shape(k, dtype):
    """``(K_PAD, BLOCK_N, num_warps)`` of the kernel for ``k`` components.

    ``K_PAD`` is ``k`` rounded up to a power of two (Triton's block sizes).
    ``BLOCK_N`` makes the tile :data:`TILE_BYTES` within ``[MIN_BLOCK_N,
    MAX_BLOCK_N]``, and ``num_warps`` gives each thread about
    :data:`THREAD_BYTES` of it, so that a program holds its whole tile in
    registers. In float32: 128 columns and 4 warps up to ``k = 16``, 128 and 8
    at ``k = 32``, 32 and 8 at ``k = 100``, 16 and 8 at ``k = 256``, 16 and 16
    at ``k = 512``; in float64 half the columns (at least 16) and, at 16
    columns, twice the warps (at most 16).
    """
    size = torch.finfo(dtype).bits // 8
    k_pad = 1 << max(0, k - 1).bit_length()
    block_n = min(MAX_BLOCK_N, max(MIN_BLOCK_N, TILE_BYTES // (size * k_pad)))
    warps = k_pad * block_n * size // (32 * THREAD_BYTES)
    num_warps = min(MAX_WARPS, max(MIN_WARPS, 1 << max(0, warps - 1).bit_length()))
    return k_pad, block_n, num_warps


def hals_sweeps_triton(Ut, G, Bt, n_sweeps, order, want_violation):
    """:func:`~skpart._core._hals.hals_sweeps` in one Triton launch.

    Same contract and same iterates (up to rounding: the products
    ``G[t] @ U`` are summed in another order) as the torch sweeps. One
    program owns ``BLOCK_N`` columns of ``Ut`` (see :func:`tile_shape`) and
    runs all ``n_sweeps`` sweeps over them with the columns in registers,
    reading the rows of ``G`` from the cache; so there is one launch per call
    instead of a few per component and sweep, and no host synchronisation.

    Limits: at most :data:`MAX_K` components (the padded column of the
    factor is held whole by a program); float32 or float64; ``G``, ``Bt`` and
    ``Ut`` of one dtype on one device (any strides). Check :func:`available`
    first.

    Parameters
    ----------
    Ut : Tensor of shape (k, n)
        The factor, transposed; updated in place.
    G : Tensor of shape (k, k)
        Gram matrix (with the L2 penalty on its diagonal).
    Bt : Tensor of shape (k, n)
        Linear term (with the L1 penalty subtracted), transposed.
    n_sweeps : int
        Number of sweeps over the components.
    order : list of int or Tensor
        Order in which the components are visited. A list is checked and
        copied to the device (the natural order ``range(k)`` once per ``k``
        and device); an integer tensor on ``Ut``'s device is used as it is
        (no copy, as CUDA graph capture requires; its entries must lie in
        ``[0, k)``).
    want_violation : bool
        Also return the projected-gradient violation of the first sweep.

    Returns
    -------
    violation : Tensor of shape (n,) or None
        Sum over components of ``|projected gradient|`` met in the first
        sweep, per problem row.
    """
    k, n = Ut.shape
    if k > MAX_K:
        raise ValueError(f"hals_sweeps_triton takes at most {MAX_K} components")
    if torch.is_tensor(order):
        order_t = order.to(device=Ut.device)
    elif list(order) == list(range(k)):
        order_t = _natural_order(k, Ut.device)
    else:
        order = list(order)
        if any(not 0 <= t < k for t in order):
            raise ValueError(f"component order {order} out of range(0, {k})")
        order_t = torch.tensor(order, dtype=torch.int32, device=Ut.device)
    n_order = order_t.numel()
    violation = (
        torch.zeros(n, dtype=Ut.dtype, device=Ut.device) if want_violation else None
    )
    if n == 0 or n_order == 0 or n_sweeps <= 0:
        return violation
    # Imported here: _hals may import this module at its top.
    from ._hals import inverse_diagonal

    kernel = _build(_interpret_requested())
    inv = inverse_diagonal(G)
    k_pad, block_n, num_warps = tile_shape(k, Ut.dtype)
    grid = (triton_cdiv(n, block_n),)
    # Without a violation the kernel never touches its pointer: pass Ut.
    viol_arg = Ut if violation is None else violation
    args = (Ut, G, Bt, inv, order_t, viol_arg, k, n, n_order, int(n_sweeps))
    strides = (*Ut.stride(), *G.stride(), *Bt.stride())
    device = torch.cuda.device(Ut.device) if Ut.is_cuda else contextlib.nullcontext()
    with device:
        kernel[grid](
            *args,
            *strides,
            K_PAD=k_pad,
            BLOCK_N=block_n,
            WANT_VIOLATION=bool(want_violation),
            num_warps=num_warps,
            # a - b * c as one rounding, as torch's addcmul (stated, since
            # Triton warns when the choice is left to its default).
            enable_fp_fusion=True,
        )
    return violation


@functools.lru_cache(maxsize=32)
def _natural_order(k, device):
    """``arange(k)`` on ``device``, made once (no copy from the host per
    call, so the natural order needs no device tensor from the caller to be
    captured in a CUDA graph after a first call)."""
    return torch.arange(k, dtype=torch.int32, device=device)


def triton_cdiv(a, b):
    """``ceil(a / b)`` for non-negative integers."""
    return -(-a // b)
