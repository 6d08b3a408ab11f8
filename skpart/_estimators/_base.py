"""Private base of the estimators: validation, device, seed and dtype."""

import contextlib
import sys
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_array, check_random_state

from .._core._device import make_generator, resolve_device
from ..utils._sklearn_compat import (
    Hidden,
    StrOptions,
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

#: Parameter text shared by every estimator's docstring.
DEVICE_DOC = """device : {"cpu", "cuda", "auto"} or str, default="cpu"
        Where the torch computations run. ``"auto"`` takes the GPU when one is
        available. Fitted attributes are always stored as NumPy arrays, so a
        model fitted on a GPU pickles and loads on a machine without one."""

RANDOM_STATE_DOC = """random_state : int, RandomState instance or None, default=None
        Seeds a local ``torch.Generator`` (the global torch seed is never
        touched). Pass an int for results that are identical from run to run on
        the CPU."""


def insert_shared_doc(cls):
    """Class decorator: put :data:`DEVICE_DOC` and :data:`RANDOM_STATE_DOC` in
    place of ``{device}`` and ``{random_state}`` in the docstring of ``cls``.

    Under ``python -OO`` there is no docstring, and nothing to do.
    """
    if cls.__doc__:
        cls.__doc__ = cls.__doc__.replace("{device}", DEVICE_DOC).replace(
            "{random_state}", RANDOM_STATE_DOC
        )
    return cls


#: Constraint on ``device`` for ``_parameter_constraints``: the three names,
#: "cuda:N" for a given GPU (hidden from error messages), or a torch.device.
DEVICE_CONSTRAINT = [
    StrOptions({"cpu", "cuda", "auto"}),
    Hidden(StrOptions({f"cuda:{i}" for i in range(64)})),
    torch.device,
]


def _check_device_name(device):
    """Resolve ``device`` with an error message that names the parameter."""
    try:
        return resolve_device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"Invalid device={device!r}: {exc}") from exc


def to_tensor(X, *, device, dtype=None):
    """Convert a validated NumPy array or SciPy sparse matrix to a torch tensor.

    Dense arrays become dense tensors (sharing memory on the CPU when possible),
    sparse matrices become ``torch.sparse_csr`` tensors.
    """
    if sp.issparse(X):
        X = X.tocsr()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            # scipy's index dtype is kept (int32 for fewer than 2**31 stored
            # entries): no copy, and torch's CSR products are faster with it.
            t = torch.sparse_csr_tensor(
                torch.from_numpy(X.indptr),
                torch.from_numpy(X.indices.astype(X.indptr.dtype, copy=False)),
                torch.from_numpy(X.data),
                size=X.shape,
                # scipy already guarantees the CSR invariants.
                check_invariants=False,
            )
    else:
        t = torch.from_numpy(np.ascontiguousarray(X))
    if dtype is not None:
        t = t.to(dtype)
    return t.to(device)


def to_numpy(t):
    """Detach a tensor and return it as a NumPy array on the CPU."""
    return t.detach().cpu().numpy()


class PartBase(TransformerMixin, BaseEstimator):
    """Common machinery of skpart's estimators (private).

    Subclasses declare ``_parameter_constraints`` and set the class attribute
    ``_positive_only`` (NMF estimators refuse negative input). The helpers
    here convert at the boundary: the torch core only ever sees tensors on the
    resolved device, in the dtype of the input.
    """

    _positive_only = True
    _accept_sparse = ("csr", "csc")
    #: Models whose core needs dense data accept sparse input and densify it.
    _densify_sparse = False

    # -- boundary ------------------------------------------------------------
    def _validate_X(self, X, *, reset):
        """Validate ``X`` once; returns a float32/float64 array or sparse matrix."""
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=self._accept_sparse,
            dtype=[np.float64, np.float32],
            force_writeable=True,
            ensure_non_negative=False,
        )
        if self._positive_only:
            data = X.data if sp.issparse(X) else X
            if data.size and data.min() < 0:
                raise ValueError(
                    f"Negative values in data passed to {type(self).__name__} (input X)"
                )
        if self._densify_sparse and sp.issparse(X):
            X = X.toarray()
        return X

    def _fit_setup(self):
        """Resolve the device and the seeded generator at the start of ``fit``."""
        self._device = _check_device_name(self.device)
        rng = check_random_state(self.random_state)
        self._generator = make_generator(rng.randint(np.iinfo(np.int32).max))
        return self._device, self._generator

    @contextlib.contextmanager
    def _transaction(self):
        """Run a fitting call that leaves the estimator as it was if it
        raises, a ``KeyboardInterrupt`` included: every attribute (fitted or
        private, ``n_features_in_`` included) is put back, and so is the
        state of the random generator that a continued fit draws from.

        The calls never change an array they found on the estimator in place
        (they assign new ones), so putting the old attributes back restores
        the old state.
        """
        saved = dict(self.__dict__)
        generator = saved.get("_generator")
        generator_state = None if generator is None else generator.get_state()
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if generator is not None:
                generator.set_state(generator_state)
            raise

    def _inference_device(self):
        """Device for ``transform`` and friends.

        The ``device`` parameter, except that a model fitted on a GPU and loaded
        on a machine without one runs on the CPU.
        """
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            return torch.device("cpu")
        return _check_device_name(self.device)

    def _decode(self, codes, components):
        """Rebuild inputs from ``codes`` with the atoms ``components`` (NumPy).

        ``inverse_transform`` is ``_decode(codes, self.components_)``; metrics
        call it with modified atoms (the dilation error dilates them). Models
        with a decoder bias or an output activation override it.
        """
        return codes @ components

    def inverse_transform(self, X):
        """Rebuild data from codes: ``X`` mapped back to the input space.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, ``n_components_``)
            Codes, as returned by ``transform``.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            The reconstruction, in the dtype of the codes.
        """
        check_is_fitted(self)
        dask_array = sys.modules.get("dask.array")
        if dask_array is not None and isinstance(X, dask_array.Array):
            from ._dask import inverse_transform

            return inverse_transform(self, X)
        codes = _check_codes(self, X)
        return self._decode(codes, self.components_.astype(codes.dtype, copy=False))

    # -- sklearn plumbing ----------------------------------------------------
    #: Prefix of the names of the output features (``None``: the class name
    #: in lower case, scikit-learn's convention).
    _feature_names_prefix = None

    @property
    def _n_features_out(self):
        return self.n_components_

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        The names are the prefix followed by the component index (e.g.
        ``nmf0``, ``nmf1``, ... for :class:`SparseNMF`, the names of
        :class:`sklearn.decomposition.NMF`).

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only used to validate feature names with the names seen in `fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            Transformed feature names.
        """
        check_is_fitted(self, "_n_features_out")
        _check_feature_names_in(self, input_features, generate_names=False)
        prefix = self._feature_names_prefix or type(self).__name__.lower()
        names = [f"{prefix}{i}" for i in range(self._n_features_out)]
        return np.asarray(names, dtype=object)

    def __getstate__(self):
        state = self.__dict__.copy()
        # torch objects that are rebuilt on demand never travel in a pickle.
        state.pop("_device", None)
        state.pop("_generator", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self._positive_only
        tags.input_tags.sparse = bool(self._accept_sparse)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _check_codes(estimator, X):
    """Validate codes passed to ``inverse_transform``: 2D, finite, k columns."""
    codes = check_array(X, accept_sparse=("csr", "csc"), dtype=[np.float64, np.float32])
    if codes.shape[1] != estimator.n_components_:
        raise ValueError(
            f"X has {codes.shape[1]} features, but {type(estimator).__name__}."
            f"inverse_transform is expecting {estimator.n_components_} features "
            "(n_components_) as input."
        )
    if sp.issparse(codes):
        codes = codes.toarray()
    return codes
