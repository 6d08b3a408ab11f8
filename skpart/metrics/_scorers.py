"""Scorers (greater is better) for model selection over part-based models."""

from functools import partial

import numpy as np

from ._reconstruction import dilation_error, reconstruction_error, split_part_model
from ._sparsity import hoyer_sparsity


def hoyer_scorer(estimator, X, y=None):
    """Mean Hoyer sparseness of the codes of ``X`` (greater is sparser).

    The codes are the output of the (last) part-based step: for a pipeline,
    ``X`` goes through every step up to and including it. Usable as
    ``scoring=hoyer_scorer`` or in a ``scoring`` dict of
    :class:`~sklearn.model_selection.GridSearchCV`.

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
    X : array-like of shape (n_samples, n_features)
    y : ignored

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import NMF
    >>> from skpart.metrics import hoyer_scorer
    >>> X = load_digits().data[:100] / 16
    >>> model = NMF(n_components=10, max_iter=500, random_state=0).fit(X)
    >>> 0 <= hoyer_scorer(model, X) <= 1
    True
    """
    model, X = split_part_model(estimator, X)
    return hoyer_sparsity(np.asarray(model.transform(X)), axis=1)


def reconstruction_scorer(estimator, X, y=None):
    """Negative :func:`~skpart.metrics.reconstruction_error` (greater is better).

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
    X : array-like of shape (n_samples, n_features)
    y : ignored

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import NMF
    >>> from skpart.metrics import reconstruction_scorer
    >>> X = load_digits().data[:100] / 16
    >>> model = NMF(n_components=10, max_iter=500, random_state=0).fit(X)
    >>> reconstruction_scorer(model, X) < 0
    True
    """
    return -reconstruction_error(estimator, X)


def _neg_dilation_error(estimator, X, y=None, *, image_shape, footprint):
    """Negative :func:`~skpart.metrics.dilation_error` (greater is better)."""
    return -dilation_error(estimator, X, image_shape, footprint=footprint)


def make_dilation_scorer(image_shape, footprint=None):
    """Make a scorer of the negative :func:`~skpart.metrics.dilation_error`.

    Parameters
    ----------
    image_shape : tuple of int
        Shape of one image, e.g. ``(28, 28)``.
    footprint : array-like of bool, default=None
        Structuring element; ``None`` is the 3x3 cross.

    Returns
    -------
    callable
        ``scorer(estimator, X, y=None) -> float``, greater is better; it
        pickles, so a search can send it to worker processes.

    Examples
    --------
    >>> from skpart.metrics import make_dilation_scorer
    >>> scorer = make_dilation_scorer((8, 8))
    >>> scorer.__name__
    'neg_dilation_error'
    """
    scorer = partial(_neg_dilation_error, image_shape=image_shape, footprint=footprint)
    scorer.__name__ = "neg_dilation_error"
    return scorer
