"""What SparseNMF and MultilayerNMF share: init rule, online fit, streamed codes,
data scale, and calls that leave the estimator as it was when they fail."""

import math

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from .._core._online import OnlineNMF, error_from_cost, forget_rate, run_passes
from ..utils._sklearn_compat import check_is_fitted
from ..utils._warnings import warn
from ._base import PartBase, to_numpy, to_tensor
from ._streaming import TensorPasses, open_stream, scaled, validated_chunks

#: Iteration cap of the codes' solver in online fitting when
#: ``transform_max_iter`` is None (``max_iter`` then counts passes).
ONLINE_CODE_MAX_ITER = 200


def code_solver_max_iter(estimator):
    """Iteration cap of the codes' solver of an NMF estimator:
    ``transform_max_iter``, else ``max_iter`` (full batch) or
    :data:`ONLINE_CODE_MAX_ITER` (``batch_size`` set)."""
    if estimator.transform_max_iter is not None:
        return estimator.transform_max_iter
    if estimator.batch_size is None:
        return estimator.max_iter
    return ONLINE_CODE_MAX_ITER


#: Data whose largest entry lies in this range (about 1e-3 to 1e6) is fitted
#: as it is, with the numbers of scikit-learn; other data is divided by a
#: power of 4 first (see :func:`data_scale`). Below it, the solvers' absolute
#: floors come within a few decades of the data or of the factors (about
#: 1e-7 for scikit-learn's ``EPSILON`` in the multiplicative updates and the
#: beta divergences, 1e-6 for the NNDSVD threshold on factors of the order
#: of the data's square root, machine epsilon in the sparseness
#: projections); above it, float32 has less than some twelve decades between
#: the squared data and its overflow.
SCALE_RANGE = (4.0**-5, 4.0**10)


def data_scale(X):
    """The power of 4 that the validated ``X`` is divided by before fitting:
    1 when its largest entry is in :data:`SCALE_RANGE` (or ``X`` is zero),
    else the power of 4 nearest to that entry.

    The solvers have absolute floors (machine epsilon, scikit-learn's
    ``EPSILON``, the NNDSVD threshold) and square the data: data near 1e-20
    or 1e20 would hit them or overflow in float32. A power of 4 divides the
    data exactly and its square root, a power of 2, the factors, so a fit at
    any scale is the fit of data near 1, scaled back exactly.
    """
    data = X.data if sp.issparse(X) else X
    high = float(data.max()) if data.size else 0.0
    if not high > 0 or SCALE_RANGE[0] <= high <= SCALE_RANGE[1]:
        return 1.0
    return 4.0 ** round(math.log(high, 4))


#: float32 data with at most this many entries is fitted and encoded in
#: float64 (the results are returned in float32): float32 saves nothing at
#: that size, and on small, nearly degenerate problems (as many components as
#: features) the extrapolated iterations amplify float32 rounding, so the
#: float32 and float64 fits of the same data ended 7e-5 apart.
SMALL_DATA = 1 << 16


def working_dtype(X):
    """The torch dtype the solvers work in for the validated ``X``: float64
    for float32 data of at most :data:`SMALL_DATA` entries, else ``None``
    (``X``'s own)."""
    if X.dtype == np.float32 and X.shape[0] * X.shape[1] <= SMALL_DATA:
        return torch.float64
    return None


def resolve_init(init, n_components, n_samples, n_features, *, error):
    """The initialisation to run for ``n_components`` atoms on data of shape
    ``(n_samples, n_features)`` (scikit-learn's rule).

    ``init=None`` gives ``"nndsvda"`` when ``n_components <= min(n_samples,
    n_features)`` and ``"random"`` otherwise. Any other ``init`` is returned
    as it is, but the NNDSVD ones need that bound: when it fails, a
    ``ValueError`` with the message ``error`` is raised.
    """
    fits_nndsvd = n_components <= min(n_samples, n_features)
    if init is None:
        return "nndsvda" if fits_nndsvd else "random"
    if init != "random" and not fits_nndsvd:
        raise ValueError(error)
    return init


def sklearn_normals(random_state):
    """Standard normal draws as scikit-learn's ``_initialize_nmf`` makes them.

    Returns a function ``shape -> CPU float64 tensor`` (the ``normals`` of
    :func:`~skpart._core._init.initialize_nmf`) drawing from
    ``check_random_state(random_state)``: a fresh ``RandomState`` for an int
    seed, the global one for ``None``, the instance itself otherwise. Given
    as ``normals`` (the draws of ``init="random"`` and of nndsvdar's fill) and,
    from another call, as ``svd_normals`` (the randomized SVD's test matrix),
    the init starts where scikit-learn's NMF starts for the same seed, on
    every device.
    """
    rng = check_random_state(random_state)

    def normals(shape):
        return torch.from_numpy(rng.standard_normal(size=shape))

    return normals


def save_online_state(state):
    """The statistics of an :class:`~skpart._core._online.OnlineNMF` as NumPy
    copies (the atoms are stored by the estimator itself)."""
    return {
        "A": to_numpy(state.A).copy(),
        "B": to_numpy(state.B).copy(),
        "weight": state.weight,
        "step": None if state.step is None else to_numpy(state.step).copy(),
    }


def _own_tensor(A, device):
    """A tensor copy of the NumPy array ``A`` (never sharing its memory: the
    online steps update the statistics in place)."""
    return to_tensor(A, device=device).clone()


def load_online_state(H, saved, device):
    """An :class:`~skpart._core._online.OnlineNMF` with atoms ``H`` (NumPy)
    and the statistics of :func:`save_online_state`, or fresh ones if
    ``saved`` is None (after a full-batch fit). Its tensors are copies: the
    steps on it never change the arrays it was loaded from."""
    H = _own_tensor(H, device)
    if saved is None:
        return OnlineNMF.start(H)
    state = OnlineNMF(
        H.contiguous(),
        _own_tensor(saved["A"], device),
        _own_tensor(saved["B"], device),
        saved["weight"],
    )
    if saved["step"] is not None:
        state.step = _own_tensor(saved["step"], device)
    return state


class OnlineStep:
    """The ``step`` argument of :func:`~skpart._core._online.run_passes`: the
    estimator's ``_online_step`` on one mini-batch, the past statistics
    weighted by ``forget_factor`` per pass over ``n_samples`` samples."""

    def __init__(self, estimator, states, n_samples):
        self.estimator, self.states, self.n_samples = estimator, states, n_samples

    def __call__(self, batch):
        rho = forget_rate(self.estimator.forget_factor, batch.shape[0], self.n_samples)
        return self.estimator._online_step(self.states, batch, rho=rho)


class NMFBase(PartBase):
    """Common machinery of SparseNMF and MultilayerNMF (private).

    Fitting calls (``fit``, ``fit_transform``, ``partial_fit``) run inside
    :meth:`_transaction`: when they raise, the estimator is left exactly as
    it was. The fitted arrays are never views of tensors that a later call
    updates.

    The solvers see the data divided by ``_data_scale`` (:func:`data_scale`,
    1 for data of ordinary scale), and the factors divided by its square
    root; the fitted attributes are in the units of the data.

    The online fit (:meth:`_fit_online`) is written here once. SparseNMF learns
    one :class:`~skpart._core._online.OnlineNMF` state, MultilayerNMF one per
    layer; the subclasses say how through these hooks:

    - ``_check_online_params(chunk)``: resolve the parameters on the first
      validated chunk of a fresh fit;
    - ``_start_online_states(chunk, first_batch, n_samples, **start)``: the
      starting states, from the first chunk (NumPy) and its tensor (divided
      by ``_data_scale``);
    - ``_online_step(states, batch, *, rho)``: one step on a mini-batch
      tensor, returning ``(cost, change, fit)`` for ``run_passes``;
    - ``_fitted_online_model()``: ``(atoms, saved)``, the fitted atoms of each
      state as the solvers see them and their saved statistics (None after a
      full-batch fit);
    - ``_set_online_model(states, *, incremental)``: store the states as
      fitted attributes (NumPy, in the data's units) and their statistics in
      ``_online_state`` (called last, after ``n_iter_`` and
      ``reconstruction_err_`` are set).

    ``_online_max_iter_warning`` holds the ``where`` and ``param`` of the
    convergence warning of the online passes (see :meth:`_warn_max_iter`).
    """

    #: scikit-learn's message by default: "... reached. Increase it to ...".
    _online_max_iter_warning = {"where": None, "param": "it"}

    def _warn_max_iter(self, n_iter, max_iter, *, where=None, param="it"):
        """Warn that a solver stopped at its cap ``max_iter`` (not with
        ``tol=0``, which asks for exactly ``max_iter`` iterations).

        scikit-learn's message, naming ``where`` the cap was reached (e.g.
        ``"in layer 1"``) and the parameter to increase, when given.
        """
        if self.tol > 0 and max_iter > 0 and n_iter >= max_iter:
            where = "" if where is None else f" {where}"
            warn(
                f"Maximum number of iterations {max_iter} reached{where}. Increase "
                f"{param} to improve convergence.",
                ConvergenceWarning,
            )

    # -- scale of the data -----------------------------------------------------
    @property
    def _factor_scale(self):
        """The square root of ``_data_scale`` (a power of 2): the fitted
        factors are those of the solvers times this."""
        return math.sqrt(getattr(self, "_data_scale", 1.0))

    def _solver_factor(self, A, like):
        """A factor ``A`` (NumPy, in the data's units: fitted atoms, custom
        starting factors) as the solvers see it: a tensor on the device and
        in the dtype of the tensor ``like``, divided by
        :attr:`_factor_scale`."""
        H = to_tensor(A, device=like.device, dtype=like.dtype)
        root = self._factor_scale
        return H if root == 1 else H / root

    def _data_tensor(self, X, device, *, reset=False):
        """The validated ``X`` as the solvers see it: a tensor on ``device``,
        divided by ``_data_scale``, in the :func:`working_dtype` of the data
        of the fit (``reset``: ``X`` is that data), so that the codes of a
        sample do not depend on the size of its batch."""
        if reset:
            self._working_dtype = working_dtype(X)
        scale = getattr(self, "_data_scale", 1.0)
        dtype = getattr(self, "_working_dtype", None)
        return to_tensor(scaled(X, scale), device=device, dtype=dtype)

    def _fitted_factor(self, F, dtype=None):
        """The solvers' factor ``F`` (a tensor) in the data's units, as NumPy
        of the data's ``dtype`` (``None``: ``F``'s, as in online fitting,
        which works in the dtype of the data)."""
        root = self._factor_scale
        out = to_numpy(F if root == 1 else F * root)
        return out if dtype is None else out.astype(dtype, copy=False)

    def _fitted_codes(self, W, dtype=None):
        """The solvers' codes ``W`` in the data's units and ``dtype``, as
        NumPy; a ``ValueError`` if they are not finite (an overflow), rather
        than codes that are silently NaN."""
        codes = self._fitted_factor(W, dtype)
        if not np.all(np.isfinite(codes)):
            raise ValueError(
                f"{type(self).__name__} computed non-finite codes: the data "
                "overflows its dtype with these components_. Pass the data as "
                "float64, or on the scale of the training data."
            )
        return codes

    def _check_finite_fit(self):
        """Refuse a fit whose atoms are not finite (the call then fails and
        the estimator keeps its old state)."""
        if not np.all(np.isfinite(self.components_)):
            raise ValueError(
                f"{type(self).__name__}'s fit did not give finite components_ "
                "(an overflow). Pass the data as float64."
            )

    # -- online fitting ------------------------------------------------------
    def _fit_online(self, X, *, incremental, **start):
        """Stream ``X`` in mini-batches: ``max_iter`` passes at most from a
        fresh start (``fit``), or one pass continuing the statistics
        (``partial_fit``). All of ``X`` is validated before the first step.
        ``start`` goes to ``_start_online_states``."""
        continuing = incremental and hasattr(self, "components_")
        X, validated, size, first_pass, chunk = open_stream(
            self, X, reset=not continuing
        )
        n_samples = X.shape[0]
        self._working_dtype = None  # online fitting works in the data's dtype
        if continuing:
            device = getattr(self, "_device", None) or self._inference_device()
            states = self._restore_online_states(device)
            scale = getattr(self, "_data_scale", 1.0)
            first_batch = to_tensor(
                scaled(chunk, scale), device=device, dtype=states[0].H.dtype
            )
        else:
            self._check_online_params(chunk)
            device, _ = self._fit_setup()
            # The first mini-batch sets the scale of the whole stream.
            scale = self._data_scale = data_scale(chunk)
            first_batch = to_tensor(scaled(chunk, scale), device=device)
            states = self._start_online_states(chunk, first_batch, n_samples, **start)
            self.n_steps_ = 0
        batches = TensorPasses(
            self,
            X,
            size,
            first_pass,
            first_batch,
            device=device,
            dtype=states[0].H.dtype,
            validated=validated,
            scale=scale,
        )
        n_iter, n_steps, stopped, recent_fit, recent_n = run_passes(
            batches,
            OnlineStep(self, states, n_samples),
            n_samples=n_samples,
            max_iter=1 if incremental else self.max_iter,
            tol=0 if incremental else self.tol,
            verbose=self.verbose,
        )
        if not incremental and not stopped:
            self._warn_max_iter(n_iter, self.max_iter, **self._online_max_iter_warning)
        self.n_steps_ += n_steps
        if not incremental:
            self.n_iter_ = n_iter
            self.reconstruction_err_ = scale * error_from_cost(
                recent_fit * n_samples / max(recent_n, 1)
            )
        self._set_online_model(states, incremental=incremental)
        self._check_finite_fit()

    def _restore_online_states(self, device):
        """The online states that continue the fitted model: the statistics
        of the last online fit, or fresh ones around the fitted atoms after a
        full-batch fit."""
        if not hasattr(self, "n_steps_"):  # a full-batch fit takes no steps
            self.n_steps_ = 0
        atoms, saved = self._fitted_online_model()
        return [load_online_state(H, entry, device) for H, entry in zip(atoms, saved)]

    # -- inference -----------------------------------------------------------
    def _encode_in_batches(self, encode, X):
        """``encode(X, Xt)`` of the validated ``X`` and its tensor ``Xt`` on
        the inference device (divided by ``_data_scale``): of all of ``X`` at
        once, or of one mini-batch of ``batch_size`` rows at a time when it is
        set (a sample's codes do not depend on the other samples, so the
        results are the same). ``encode`` returns the solvers' codes, a
        tensor or a list of them. Returns the list of results, one per
        mini-batch, as NumPy codes in the data's units (see
        :meth:`_fitted_codes`)."""
        check_is_fitted(self)
        if self.batch_size is None:
            chunks = [self._validate_X(X, reset=False)]
        else:
            slices_and_chunks = validated_chunks(self, X, self.batch_size, reset=False)
            chunks = (chunk for _, chunk in slices_and_chunks)
        device = self._inference_device()
        out = []
        for chunk in chunks:
            codes = encode(chunk, self._data_tensor(chunk, device))
            if isinstance(codes, list):
                out.append([self._fitted_codes(W, chunk.dtype) for W in codes])
            else:
                out.append(self._fitted_codes(codes, chunk.dtype))
        return out
