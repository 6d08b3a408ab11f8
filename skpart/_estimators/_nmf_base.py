"""What SparseNMF and MultilayerNMF share: init rule, online fit, streamed codes."""

import warnings

from sklearn.exceptions import ConvergenceWarning

from .._core._online import OnlineNMF, error_from_cost, forget_rate, run_passes
from ..utils._sklearn_compat import check_is_fitted
from ._base import PartBase, to_numpy, to_tensor
from ._streaming import TensorPasses, open_stream, validated_chunks

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


def save_online_state(state):
    """The statistics of an :class:`~skpart._core._online.OnlineNMF` as NumPy
    (the atoms are stored by the estimator itself)."""
    return {
        "A": to_numpy(state.A),
        "B": to_numpy(state.B),
        "weight": state.weight,
        "step": None if state.step is None else to_numpy(state.step),
    }


def load_online_state(H, saved, device):
    """An :class:`~skpart._core._online.OnlineNMF` with atoms ``H`` (NumPy)
    and the statistics of :func:`save_online_state`, or fresh ones if
    ``saved`` is None (after a full-batch fit)."""
    H = to_tensor(H, device=device)
    if saved is None:
        return OnlineNMF.start(H)
    state = OnlineNMF(
        H.contiguous(),
        to_tensor(saved["A"], device=device),
        to_tensor(saved["B"], device=device),
        saved["weight"],
    )
    if saved["step"] is not None:
        state.step = to_tensor(saved["step"], device=device)
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

    The online fit (:meth:`_fit_online`) is written here once. SparseNMF learns
    one :class:`~skpart._core._online.OnlineNMF` state, MultilayerNMF one per
    layer; the subclasses say how through these hooks:

    - ``_check_online_params(chunk)``: resolve the parameters on the first
      validated chunk of a fresh fit;
    - ``_start_online_states(chunk, first_batch, n_samples, **start)``: the
      starting states, from the first chunk (NumPy) and its tensor;
    - ``_online_step(states, batch, *, rho)``: one step on a mini-batch
      tensor, returning ``(cost, change, fit)`` for ``run_passes``;
    - ``_fitted_online_model()``: ``(atoms, saved)``, the fitted atoms of each
      state and their saved statistics (None after a full-batch fit);
    - ``_set_online_model(states, *, incremental)``: store the states as
      fitted attributes (NumPy) and their statistics in ``_online_state``
      (called last, after ``n_iter_`` and ``reconstruction_err_`` are set).

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
            warnings.warn(
                f"Maximum number of iterations {max_iter} reached{where}. Increase "
                f"{param} to improve convergence.",
                ConvergenceWarning,
                stacklevel=4,
            )

    # -- online fitting ------------------------------------------------------
    def _fit_online(self, X, *, incremental, **start):
        """Stream ``X`` in mini-batches: ``max_iter`` passes at most from a
        fresh start (``fit``), or one pass continuing the statistics
        (``partial_fit``). ``start`` goes to ``_start_online_states``."""
        continuing = incremental and hasattr(self, "components_")
        X, size, first_pass, chunk = open_stream(self, X, reset=not continuing)
        n_samples = X.shape[0]
        if continuing:
            device = getattr(self, "_device", None) or self._inference_device()
            states = self._restore_online_states(device)
            first_batch = to_tensor(chunk, device=device, dtype=states[0].H.dtype)
        else:
            self._check_online_params(chunk)
            device, _ = self._fit_setup()
            first_batch = to_tensor(chunk, device=device)
            states = self._start_online_states(chunk, first_batch, n_samples, **start)
            self.n_steps_ = 0
        dtype = states[0].H.dtype
        batches = TensorPasses(
            self, X, size, first_pass, first_batch, device=device, dtype=dtype
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
            self.reconstruction_err_ = error_from_cost(
                recent_fit * n_samples / max(recent_n, 1)
            )
        self._set_online_model(states, incremental=incremental)

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
        the inference device: of all of ``X`` at once, or of one mini-batch
        of ``batch_size`` rows at a time when it is set (a sample's codes do
        not depend on the other samples, so the results are the same).
        Returns the list of results, one per mini-batch."""
        check_is_fitted(self)
        if self.batch_size is None:
            chunks = [self._validate_X(X, reset=False)]
        else:
            slices_and_chunks = validated_chunks(self, X, self.batch_size, reset=False)
            chunks = (chunk for _, chunk in slices_and_chunks)
        device = self._inference_device()
        return [encode(chunk, to_tensor(chunk, device=device)) for chunk in chunks]
