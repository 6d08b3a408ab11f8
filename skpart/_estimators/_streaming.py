"""Row chunks of large arrays: validated one at a time, memmap pages released."""

import mmap

import numpy as np

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
    mm = getattr(X, "_mmap", None)
    if (
        not isinstance(X, np.memmap)
        or mm is None
        or getattr(X, "mode", "c") == "c"
        or not hasattr(mmap, "MADV_DONTNEED")
        or X.size == 0
    ):
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    low, high = byte_bounds(X)
    start = (low - base) // mmap.PAGESIZE * mmap.PAGESIZE
    stop = min(high - base, len(mm))
    if stop > start:
        mm.madvise(mmap.MADV_DONTNEED, start, stop - start)


def validated_chunks(estimator, X, size, *, reset):
    """Yield ``(slice, chunk)`` over the rows of ``X``, each chunk validated.

    ``X`` that :func:`streamable` accepts is validated one chunk at a time
    (``estimator._validate_X``; the first chunk with ``reset``), so a
    ``numpy.memmap`` is never loaded whole, and its pages are released after
    each chunk. Other input is validated whole first and then sliced.
    """
    if not streamable(X):
        X = estimator._validate_X(X, reset=reset)
        for sl in row_slices(X.shape[0], size):
            yield sl, X[sl]
        return
    for idx, sl in enumerate(row_slices(X.shape[0], size)):
        rows = X[sl]
        chunk = estimator._validate_X(rows, reset=reset and idx == 0)
        yield sl, chunk
        release_pages(rows)
