"""Hoyer's sparseness measure of vectors."""

import numpy as np
import scipy.sparse as sp


def hoyer_sparsity(X, axis=1):
    """Mean Hoyer sparseness of the vectors of ``X`` along ``axis``.

    For a vector ``x`` of length ``n`` Hoyer's (2004) sparseness is

    .. math::

        \\sigma(x) = \\frac{\\sqrt{n} - \\|x\\|_1 / \\|x\\|_2}{\\sqrt{n} - 1},

    which is 0 for a vector whose entries are all equal in magnitude and 1 for
    a vector with a single non-zero entry.

    Parameters
    ----------
    X : array-like or sparse matrix of shape (n_samples, n_features)
        The vectors, e.g. codes (``axis=1``: one code vector per sample) or
        atoms (``components_`` with ``axis=1``).
    axis : {0, 1}, default=1
        ``1`` measures each row, ``0`` each column.

    Returns
    -------
    float
        The sparseness averaged over the vectors.

    Notes
    -----
    An all-zero vector has no defined sparseness (0 / 0). It counts as 0 here,
    the value of a maximally dense vector, rather than the value ~1.1 that a
    guarded division by a tiny L2 norm would give. Vectors of length 1 have no
    defined sparseness either and raise ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> from skpart.metrics import hoyer_sparsity
    >>> hoyer_sparsity(np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
    0.5
    """
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, got {axis!r}")
    if sp.issparse(X):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array, got an array of shape {X.shape}")
    if axis == 0:
        X = X.T
    n = X.shape[1]
    if n < 2:
        raise ValueError(
            f"Hoyer sparseness needs vectors of length >= 2, got length {n}"
        )
    if X.shape[0] == 0:
        raise ValueError("Hoyer sparseness of an empty set of vectors is undefined")
    l1 = np.abs(X).sum(axis=1)
    l2 = np.sqrt((X * X).sum(axis=1))
    ratio = np.divide(l1, l2, out=np.full_like(l1, np.sqrt(n)), where=l2 > 0)
    return float(np.mean((np.sqrt(n) - ratio) / (np.sqrt(n) - 1)))
