"""Reconstruction and max-approximation-to-dilation errors of part-based models."""

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_array, check_is_fitted

#: The default structuring element of :func:`dilation_error`: the 3x3 cross.
CROSS_3X3 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def _is_part_model(step):
    """A fitted step that has atoms and a decoder (a skpart model, sklearn NMF)."""
    return hasattr(step, "components_") and hasattr(step, "inverse_transform")


def split_part_model(estimator, X):
    """Return ``(model, X_model)``: the part-based model and the data it sees.

    For a bare estimator that is the estimator itself and ``X``. For a
    :class:`~sklearn.pipeline.Pipeline` it is the last step that has
    ``components_`` and ``inverse_transform`` and ``X`` passed through the
    steps before it.
    """
    if isinstance(estimator, Pipeline):
        steps = [step for _, step in estimator.steps]
        idx = [i for i, step in enumerate(steps) if _is_part_model(step)]
        if not idx:
            raise ValueError(
                "The pipeline has no fitted part-based step (a step with "
                "`components_` and `inverse_transform`)."
            )
        for step in steps[: idx[-1]]:
            if step is not None and step != "passthrough":
                X = step.transform(X)
        return steps[idx[-1]], X
    check_is_fitted(estimator)
    if not _is_part_model(estimator):
        raise TypeError(
            f"{type(estimator).__name__} is not a part-based model: it needs "
            "`components_` and `inverse_transform`."
        )
    return estimator, X


def _dense(X):
    X = X.toarray() if sp.issparse(X) else X
    return np.asarray(X, dtype=np.float64)


def _dilate(rows, image_shape, footprint):
    """Grey dilation of each row seen as an image of ``image_shape``, flattened."""
    images = _dense(rows).reshape(-1, *image_shape)
    # A leading axis of length 1 in the footprint dilates every image on its own.
    dilated = ndimage.grey_dilation(images, footprint=footprint[None])
    return dilated.reshape(len(images), -1)


def _decode(model, codes, components):
    decode = getattr(model, "_decode", None)
    if decode is not None:
        return decode(codes, components)
    return codes @ components


def reconstruction_error(estimator, X):
    """Mean squared error per element of a model's reconstruction of ``X``.

    .. math::

        \\frac{1}{n_{samples} n_{features}} \\| X - g(f(X)) \\|_F^2

    with ``f`` the model's ``transform`` and ``g`` its ``inverse_transform``.

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
        A skpart model (or any model with ``transform``, ``inverse_transform``
        and ``components_``, such as :class:`sklearn.decomposition.NMF`), or a
        pipeline containing one; then the error is measured at the input of
        the last such step.
    X : array-like or sparse matrix of shape (n_samples, n_features)

    Returns
    -------
    float

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import NMF
    >>> from skpart.metrics import reconstruction_error
    >>> X = load_digits().data[:100] / 16
    >>> model = NMF(n_components=10, max_iter=500, random_state=0).fit(X)
    >>> bool(reconstruction_error(model, X) < 0.05)
    True
    """
    model, X = split_part_model(estimator, X)
    codes = model.transform(X)
    X_hat = model.inverse_transform(codes)
    return float(np.mean((_dense(X) - _dense(X_hat)) ** 2))


def dilation_error(estimator, X, image_shape, footprint=None):
    """Max-approximation-to-dilation error of a part-based model.

    A morphological dilation of an image made of non-overlapping parts is
    approximately the sum of the dilated parts. This metric dilates each atom
    (a row of ``components_`` seen as an image), rebuilds ``X`` from its codes
    with the dilated atoms, and returns the per-pixel mean squared error
    against the dilated ``X``. Models with a decoder bias and an output
    activation (the autoencoder) apply them as in ``inverse_transform``; the
    bias is not dilated. Nothing is clipped.

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
        As in :func:`reconstruction_error`.
    X : array-like of shape (n_samples, n_features)
        Images, flattened in C order.
    image_shape : tuple of int
        Shape of one image, e.g. ``(28, 28)``; its product must equal
        ``n_features``.
    footprint : array-like of bool, default=None
        Structuring element of the grey dilation; ``None`` is the 3x3 cross.

    Returns
    -------
    float

    References
    ----------
    Ritter, G. X. and Wilson, J. N., *Handbook of Computer Vision Algorithms
    in Image Algebra*; the measure as used for part-based autoencoders by
    Lemme, Reinhart and Steil (2012).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.decomposition import NMF
    >>> from skpart.metrics import dilation_error
    >>> X = load_digits().data[:100] / 16
    >>> model = NMF(n_components=10, max_iter=500, random_state=0).fit(X)
    >>> bool(dilation_error(model, X, image_shape=(8, 8)) > 0)
    True
    """
    model, X = split_part_model(estimator, X)
    X = check_array(X, accept_sparse="csr", dtype=[np.float64, np.float32])
    image_shape = tuple(int(s) for s in image_shape)
    n_features = X.shape[1]
    if int(np.prod(image_shape)) != n_features:
        raise ValueError(
            f"image_shape={image_shape} has {int(np.prod(image_shape))} pixels "
            f"but X has {n_features} features"
        )
    footprint = CROSS_3X3 if footprint is None else np.asarray(footprint, bool)
    if footprint.ndim != len(image_shape):
        raise ValueError(
            f"footprint has {footprint.ndim} dimensions, images have {len(image_shape)}"
        )
    codes = model.transform(X)
    atoms = _dilate(model.components_, image_shape, footprint)
    X_hat = _dense(_decode(model, np.asarray(codes, dtype=np.float64), atoms))
    return float(np.mean((_dilate(X, image_shape, footprint) - X_hat) ** 2))
