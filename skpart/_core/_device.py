"""Device resolution, dtype policy and seeded random generators for the torch core."""

import contextlib

import torch

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device):
    """Return the :class:`torch.device` named by ``device``.

    ``"cpu"`` and ``"cuda"`` (or ``"cuda:N"``) are taken as they are; ``"auto"``
    picks CUDA when it is available and the CPU otherwise. A ``torch.device`` is
    returned unchanged. Asking for CUDA on a machine without it raises
    ``ValueError``.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine. Use device='cpu' or device='auto'."
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"Unsupported device {device!r}; use 'cpu', 'cuda' or 'auto'.")
    return dev


def resolve_dtype(dtype):
    """Return the torch floating dtype for a numpy dtype name or torch dtype.

    float32 stays float32 and float64 stays float64 (the input decides, as in
    scikit-learn's NMF); anything else is computed in float64.
    """
    if isinstance(dtype, torch.dtype):
        return dtype if dtype in (torch.float32, torch.float64) else torch.float64
    return _DTYPES.get(str(dtype), torch.float64)


def make_generator(seed):
    """Return a CPU :class:`torch.Generator` seeded with the integer ``seed``.

    Random tensors are always drawn on the CPU from this generator and then moved
    to the compute device (see :func:`rand`), so that a given seed gives the same
    starting point on every device.
    """
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    return gen


def rand(shape, generator, *, dtype, device):
    """Uniform [0, 1) draws from ``generator`` (on CPU), moved to ``device``."""
    out = torch.rand(shape, generator=generator, dtype=torch.float64)
    return out.to(device=device, dtype=dtype)


def randn(shape, generator, *, dtype, device):
    """Standard normal draws from ``generator`` (on CPU), moved to ``device``."""
    out = torch.randn(shape, generator=generator, dtype=torch.float64)
    return out.to(device=device, dtype=dtype)


def randperm(n, generator, *, device):
    """A random permutation of ``range(n)`` from ``generator``, on ``device``."""
    return torch.randperm(n, generator=generator).to(device)


#: Use the sync-free variants on the CPU too (see :func:`sync_free`).
_FORCE_SYNC_FREE = False


def sync_free(device):
    """Whether the solvers take their sync-free variants on ``device``.

    A host read of a device value (``float(t)``, ``bool(t)``, boolean
    indexing) stalls a GPU until its queue drains and breaks CUDA-graph
    capture, so off the CPU every decision inside a solver step is tensor
    arithmetic (``torch.where``, masks). On the CPU such a read costs
    nothing, and where the sync-free variant does more work the CPU keeps
    the branch; :func:`force_sync_free` selects the sync-free variants on
    the CPU too, so that tests check on the CPU what a GPU runs.
    """
    return torch.device(device).type != "cpu" or _FORCE_SYNC_FREE


@contextlib.contextmanager
def force_sync_free():
    """Inside the block, :func:`sync_free` is true on the CPU too."""
    global _FORCE_SYNC_FREE
    old, _FORCE_SYNC_FREE = _FORCE_SYNC_FREE, True
    try:
        yield
    finally:
        _FORCE_SYNC_FREE = old
