"""Row chunks of large arrays: validated one at a time, memmap pages released."""

import itertools
import mmap
import os

import numpy as np
import torch

from ._base import to_tensor

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy < 2
    from numpy import byte_bounds


def row_slices(n_rows, size):
    """Consecutive slices of ``size`` rows (the last one may be shorter)."""
    size = max(1, int(size))
    return [slice(i, min(i + size, n_rows)) for i in range(0, n_rows, size)]


def streamable(X):
    """Whether ``X`` can be validated chunk by chunk without loading it whole.

    Two-dimensional NumPy arrays (``numpy.memmap`` included) of a numeric
    dtype with at least one row; anything else (lists, data frames, sparse
    matrices, empty or badly shaped input) is validated whole, which gives
    scikit-learn's usual messages.
    """
    return (
        isinstance(X, np.ndarray)
        and X.ndim == 2
        and X.shape[0] > 0
        and X.shape[1] > 0
        and X.dtype.kind in "fiu"
    )


def release_pages(X):
    """Drop the pages of the memory-mapped array ``X`` from the process.

    A ``numpy.memmap`` that has been read keeps its pages in the resident set
    size (they stay in the page cache, so reading them again is cheap);
    ``madvise(MADV_DONTNEED)`` over the rows just used keeps the resident set
    to about one chunk. Only shared mappings (modes ``"r"``, ``"r+"``,
    ``"w+"``) are released: in copy-on-write mode (``"c"``) it would discard
    the caller's changes. Anything else is left alone.
    """
    mapping = getattr(X, "_mmap", None)
    if (
        not isinstance(X, np.memmap)
        or mapping is None
        or getattr(X, "mode", "c") == "c"
        or not hasattr(mmap, "MADV_DONTNEED")
        or X.size == 0
    ):
        return
    base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    low, high = byte_bounds(X)
    start = (low - base) // mmap.PAGESIZE * mmap.PAGESIZE
    stop = min(high - base, len(mapping))
    if stop > start:
        mapping.madvise(mmap.MADV_DONTNEED, start, stop - start)


def validated_chunks(estimator, X, size, *, reset, validated=False):
    """Yield ``(slice, chunk)`` over the rows of ``X``, each chunk validated.

    ``X`` that :func:`streamable` accepts is validated one chunk at a time
    (``estimator._validate_X``; the first chunk with ``reset``), so a
    ``numpy.memmap`` is never loaded whole, and its pages are released after
    each chunk. Other input is validated whole first and then sliced. With
    ``validated``, ``X`` is the output of ``estimator._validate_X`` already and
    is only sliced (validating its chunks again would check the feature names
    of a data frame against an array, with a warning per chunk).
    """
    if validated or not streamable(X):
        if not validated:
            X = estimator._validate_X(X, reset=reset)
        for sl in row_slices(X.shape[0], size):
            yield sl, X[sl]
        return
    for idx, sl in enumerate(row_slices(X.shape[0], size)):
        rows = X[sl]
        chunk = estimator._validate_X(rows, reset=reset and idx == 0)
        yield sl, chunk
        release_pages(rows)


def open_stream(estimator, X, *, reset):
    """Start the online fitting of ``estimator`` on ``X``.

    ``X`` is validated whole at once unless :func:`streamable` accepts it;
    then it is validated chunk by chunk to its end (the first chunk with
    ``reset``) before anything else, so that bad values anywhere in it raise
    before the first mini-batch step (a fit may stop before it reads the
    last rows). Returns ``X`` (validated or not), whether it is validated,
    the mini-batch size (``estimator.batch_size``, or every row when it is
    None), the first pass of :func:`validated_chunks` and that pass's first
    chunk, already taken from it.
    """
    validated = not streamable(X)
    if validated:
        X = estimator._validate_X(X, reset=reset)
    size = X.shape[0] if estimator.batch_size is None else estimator.batch_size
    if not validated:
        for _ in validated_chunks(estimator, X, size, reset=reset):
            pass
    first_pass = validated_chunks(estimator, X, size, reset=False, validated=validated)
    _, chunk = next(first_pass)
    return X, validated, size, first_pass, chunk


def as_tensors(chunks, *, device, dtype, scale=1.0):
    """The chunks of :func:`validated_chunks` as tensors (their slices
    dropped), divided by ``scale``."""
    for _, chunk in chunks:
        yield to_tensor(scaled(chunk, scale), device=device, dtype=dtype)


def scaled(X, scale):
    """``X`` (array or sparse matrix) divided by ``scale``, a new array; ``X``
    itself when ``scale`` is 1. A power of two divides exactly."""
    return X if scale == 1 else X * (1.0 / scale)


def kept_on_device(X, device):
    """Whether :class:`TensorPasses` moves ``X`` to ``device`` once and keeps
    it there: off the CPU, for data already in memory (a ``numpy.memmap`` is
    streamed from its file at every pass)."""
    return torch.device(device).type != "cpu" and not isinstance(X, np.memmap)


class TensorPasses:
    """The mini-batch tensors of each pass over ``X``, one pass per call (the
    ``batches`` argument of :func:`~skpart._core._online.run_passes`),
    divided by ``scale``.

    The first call continues ``first_pass`` (from :func:`open_stream`, whose
    first chunk was already taken and converted to ``first_batch``); every
    later call goes through ``X`` chunk by chunk again (validating the chunks
    unless ``validated``). Off the CPU, an in-memory ``X`` (not a
    ``numpy.memmap``) is moved once: the first pass's device tensors are kept
    and every later pass reuses them, so the data stays on the device for
    the whole fit instead of being copied over at every mini-batch.
    """

    def __init__(
        self,
        estimator,
        X,
        size,
        first_pass,
        first_batch,
        *,
        device,
        dtype,
        validated=False,
        scale=1.0,
    ):
        self.estimator, self.X, self.size = estimator, X, size
        self.device, self.dtype = device, dtype
        self.validated, self.scale = validated, scale
        rest = as_tensors(first_pass, device=device, dtype=dtype, scale=scale)
        self._first_pass = itertools.chain([first_batch], rest)
        self._keeps = kept_on_device(X, device)
        self._kept = None

    def _keep(self, batches):
        """Yield ``batches``, keeping them for the later passes (once the
        whole pass went through)."""
        kept = []
        for batch in batches:
            kept.append(batch)
            yield batch
        self._kept = kept

    def __call__(self):
        if self._first_pass is not None:
            batches, self._first_pass = self._first_pass, None
            return self._keep(batches) if self._keeps else batches
        if self._kept is not None:
            return iter(self._kept)
        chunks = validated_chunks(
            self.estimator, self.X, self.size, reset=False, validated=self.validated
        )
        return as_tensors(
            chunks, device=self.device, dtype=self.dtype, scale=self.scale
        )


class MemmapRows:
    """Rows of a validated ``numpy.memmap``, read on demand as tensors.

    Stands in for the training tensor of the autoencoder's loop: it has the
    ``shape``, ``dtype``, ``device`` and ``numel()`` of the tensor it
    replaces, and indexing it by a slice or by an index tensor returns those
    rows as a tensor, in that order (the same values as indexing the
    in-memory tensor). Only the rows asked for are read, and the resident set
    does not grow with the number of samples: rows picked at random are read
    from the file with ``os.pread`` (through the page cache, without mapping
    anything: a fault on a file mapping maps the whole cached folio around
    it, up to megabytes per row on recent kernels), and the pages mapped by
    slices are released after every ``_RELEASE_BYTES``. A copy-on-write
    memmap (mode ``"c"``), a view with non-contiguous rows or one without a
    file is read through the mapping instead, released the same way.

    Parameters
    ----------
    X : numpy.memmap of shape (n_rows, n_features)
        Data already validated chunk by chunk.
    dtype : numpy dtype
        Validated dtype (float32 or float64).
    device : torch.device
    mean : Tensor of shape (n_features,)
        Mean row of the data (for the initialisation), computed while
        validating.
    index : ndarray of int or None, default=None
        Rows of ``X`` this object stands for (a subset, in that order).
    """

    _RELEASE_BYTES = 64 << 20

    def __init__(self, X, *, dtype, device, mean, index=None):
        self._X, self._np_dtype, self._mean, self._index = X, dtype, mean, index
        self.device = device
        self.dtype = torch.float32 if dtype == np.float32 else torch.float64
        n = X.shape[0] if index is None else len(index)
        self.shape = (n, X.shape[1])
        self._bytes_mapped = 0
        self._file = _file_position(X)

    def numel(self):
        return self.shape[0] * self.shape[1]

    def mean(self, dim=0):
        """The mean row (``dim=0`` only)."""
        if dim != 0:
            raise ValueError("MemmapRows only knows its mean row (dim=0).")
        return self._mean

    def _rows(self, key):
        """Row numbers of ``X`` for a slice or index array of this object."""
        if self._index is None:
            return key
        return self._index[key]

    def __getitem__(self, key):
        if torch.is_tensor(key):
            key = key.cpu().numpy()
        rows = self._rows(key)
        if isinstance(rows, slice) or self._file is None:
            rows = np.array(self._X[rows], dtype=self._np_dtype)
            self._bytes_mapped += rows.nbytes
        else:
            rows = _pread_rows(self._X, self._file, np.asarray(rows))
            rows = rows.astype(self._np_dtype, copy=False)
        if self._bytes_mapped >= self._RELEASE_BYTES:
            release_pages(self._X)
            self._bytes_mapped = 0
        return torch.from_numpy(rows).to(self.device)

    def subset(self, idx):
        """The rows ``idx`` (an index tensor) of this object, not read yet."""
        idx = idx.cpu().numpy()
        return MemmapRows(
            self._X,
            dtype=self._np_dtype,
            device=self.device,
            mean=self._mean,
            index=idx if self._index is None else self._index[idx],
        )

    def head(self, n):
        """The first ``n`` rows as a tensor."""
        return self[slice(0, min(n, self.shape[0]))]


def _file_position(X):
    """``(path, position of row 0, row stride)`` to read rows of the memmap
    ``X`` from its file, or None when they must be read through the mapping
    (copy-on-write mode, no file, rows not contiguous)."""
    mapping = getattr(X, "_mmap", None)
    if (
        mapping is None
        or getattr(X, "filename", None) is None
        or getattr(X, "mode", "c") == "c"
        or X.ndim != 2
        or X.strides[1] != X.itemsize
        or X.strides[0] < 0
    ):
        return None
    base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    start = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY
    return X.filename, start + (X.ctypes.data - base), X.strides[0]


def _pread_rows(X, file, idx):
    """Rows ``idx`` of the memmap ``X``, read from its file (a copy)."""
    path, first, stride = file
    out = np.empty((len(idx), X.shape[1]), dtype=X.dtype)
    view = memoryview(out).cast("B")
    size = out.strides[0]
    fd = os.open(path, os.O_RDONLY)
    try:
        for j, i in enumerate(idx.tolist()):
            got = os.preadv(fd, [view[j * size : (j + 1) * size]], first + i * stride)
            if got != size:
                raise OSError(f"short read from {path} at row {i}")
    finally:
        os.close(fd)
    return out


def scan_memmap(estimator, X, *, reset, size=4096):
    """Validate a ``numpy.memmap`` chunk by chunk and summarise it.

    Returns ``(dtype, mean, low, high)``: the validated dtype, the mean row
    (float64, summed chunk by chunk), and the smallest and largest entries.
    The pages are released after each chunk.
    """
    total, low, high, dtype = None, np.inf, -np.inf, None
    for _, chunk in validated_chunks(estimator, X, size, reset=reset):
        dtype = chunk.dtype
        part = chunk.sum(axis=0, dtype=np.float64)
        total = part if total is None else total + part
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    return dtype, total / X.shape[0], low, high
