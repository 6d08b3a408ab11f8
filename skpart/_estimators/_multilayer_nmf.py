"""The MultilayerNMF estimator: stacked NMF layers with joint fine-tuning."""

from numbers import Integral, Real

import numpy as np
import torch

from .._core._beta import beta_divergence
from .._core._init import initialize_nmf
from .._core._multilayer import effective_atoms, fine_tune, fit_layers, layer_codes
from .._core._nmf import solve_codes
from .._core._online import OnlineNMF, multilayer_step
from ..utils._sklearn_compat import Interval, StrOptions, _fit_context
from . import _dask
from ._base import insert_shared_doc, to_numpy, to_tensor
from ._nmf_base import (
    NMFBase,
    code_solver_max_iter,
    data_scale,
    resolve_init,
    save_online_state,
    sklearn_normals,
)

_SPARSENESS_CONSTRAINT = [Interval(Real, 0, 1, closed="both"), list, tuple, None]


@insert_shared_doc
class MultilayerNMF(NMFBase):
    """Multilayer non-negative matrix factorisation with joint fine-tuning.

    A stack of non-negative factorisations ``X ~ W_L H_L ... H_2 H_1``. Layer 1
    factorises the data, ``X ~ W_1 H_1``, and layer ``l`` factorises the codes
    of the layer before, ``W_(l-1) ~ W_l H_l`` (Cichocki and Zdunek, 2006),
    each layer with the solver of :class:`~skpart.SparseNMF`. After this
    sequential pass all factors are fine-tuned jointly on the reconstruction
    of ``X`` (as deep NMF does after its layer-wise pre-training, Trigeorgis et
    al., 2014), which is what makes the stack better than its parts. The
    effective atoms ``components_ = H_L ... H_1`` live in input space and are
    non-negative, ready to plot.

    The fine-tuning minimises

    .. math::

        L(W_L, H_1, \\dots, H_L) = 0.5 \\, \\| X - W_L H_L \\cdots H_1 \\|_{Fro}^2

    over non-negative factors, subject to the Hoyer (2004) sparseness
    constraints when they are set: every row of ``H_l`` has sparseness
    ``sparseness_components[l]`` and every row of ``W_L`` has sparseness
    ``sparseness_codes[L]``, where the sparseness of a vector ``x`` of length
    ``n`` is :math:`(\\sqrt{n} - \\|x\\|_1 / \\|x\\|_2) / (\\sqrt{n} - 1)`.
    The constraints are hard (no penalty weights). Layer ``l`` of the
    sequential pass solves the same problem for ``W_(l-1) ~ W_l H_l`` with the
    constraints of layer ``l``.

    Orientation: as in scikit-learn's :class:`~sklearn.decomposition.NMF`,
    rows of ``X`` are samples, ``W`` holds the codes (one row per sample) and
    ``H`` the atoms (one row per atom). Hoyer's paper writes the transpose
    (his ``W`` holds the atoms).

    Parameters
    ----------
    n_components : int or tuple of int
        The ranks ``(k_1, ..., k_L)`` of the layers, first (closest to the
        data) to last; a bare int makes one layer. Ranks must not increase with
        depth and ``k_1`` must not exceed ``n_features``.

    sparseness_components : float, sequence of (float or None) or None, \
default=None
        Hoyer sparseness in [0, 1] of every row of every ``H_l`` (one value for
        all layers), or one value (or ``None``) per layer. ``None``: no
        constraint. The rows of ``H_1`` are atoms in input space; the rows of a
        deeper ``H_l`` say how an atom of layer ``l`` mixes the atoms of layer
        ``l - 1``. ``components_`` is not constrained itself.

    sparseness_codes : float, sequence of (float or None) or None, default=None
        Hoyer sparseness in [0, 1] of every code vector, one value for all
        layers or one per layer: it constrains ``W_l`` in the sequential pass,
        ``W_L`` in the fine-tuning, and the codes that :meth:`transform` and
        :meth:`transform_layers` return.

    init : {"random", "nndsvd", "nndsvda", "nndsvdar"}, default=None
        Initialisation of every layer's factorisation, as in
        :class:`~sklearn.decomposition.NMF`. ``None`` takes, per layer,
        ``"nndsvda"`` when ``k_l <= min(n_samples, k_(l-1))`` and
        ``"random"`` otherwise (``k_0 = n_features``).

    solver : {"cd", "mu"}, default="cd"
        Solver of the layer-wise factorisations and of the codes in
        :meth:`transform`: coordinate descent (HALS) or multiplicative
        updates. Factors with a sparseness target always use Hoyer's projected
        gradient.

    max_iter : int, default=200
        Maximum number of iterations of every layer's factorisation.

    fine_tune_iter : int, default=100
        Maximum number of fine-tuning sweeps (one sweep updates every factor
        once). ``0`` keeps the stacked model of the sequential pass.

    tol : float, default=1e-4
        Tolerance of the stopping rules: the layers' and the code solver's as
        in :class:`~skpart.SparseNMF`; the fine-tuning stops when a sweep
        lowers the reconstruction error ``||X - W_L H_L ... H_1||_Fro`` by
        less than ``tol`` times its value before the fine-tuning.

    transform_max_iter : int or None, default=None
        Maximum number of iterations of the code solver in :meth:`transform`,
        :meth:`transform_layers` and :meth:`fit_transform`, and of every
        mini-batch's codes in online fitting. If `None`, it defaults to
        `max_iter`, or to 200 when `batch_size` is set (`max_iter` then
        counts passes).

    batch_size : int or None, default=None
        `None` fits on the whole data at once (sequential pass and
        fine-tuning). An int streams the rows in mini-batches of that size
        (online multilayer NMF, see Notes): memory does not grow with the
        number of samples, a ``numpy.memmap`` is read one mini-batch at a
        time, `max_iter` counts passes over the data, there is no
        fine-tuning, and the transforms also work in mini-batches (same
        codes). :meth:`partial_fit` splits its input into mini-batches of
        this size (`None`: one mini-batch).

    forget_factor : float in [0, 1], default=0.7
        Online fitting only: the weight left to every layer's statistics of
        the past after one pass over the data of `fit`, or after one call of
        :meth:`partial_fit` (as in :class:`~skpart.SparseNMF`).

    {random_state}

    verbose : int, default=0
        Print the progress of the layers and of the fine-tuning.

    {device}

    Attributes
    ----------
    components_ : ndarray of shape (``n_components_``, n_features)
        The effective atoms ``H_L ... H_1`` in input space (non-negative).

    layers_ : list of ndarray
        The factors ``H_1, ..., H_L``; ``layers_[l]`` has shape
        ``(k_(l+1), k_l)`` with ``k_0 = n_features``.

    n_components_ : int
        The rank ``k_L`` of the last layer (the number of codes).

    reconstruction_err_ : float
        Frobenius norm ``||X - W_L components_||_Fro`` on the training data,
        with the codes that :meth:`fit_transform` returns.

    n_iter_ : int
        Number of fine-tuning sweeps done (``0`` with ``fine_tune_iter=0``).
        With `batch_size` (no fine-tuning): the passes over the data started.

    n_iter_layers_ : list of int
        Number of iterations of every layer's factorisation (with
        `batch_size`: the passes over the data, the same for every layer).

    n_steps_ : int
        Number of mini-batches processed (online fitting only: `batch_size`
        set or :meth:`partial_fit`; it counts over all calls).

    loss_curve_ : list of float
        The objective ``0.5 ||X - W_L H_L ... H_1||_Fro^2``:
        ``loss_curve_[0]`` for the stacked model of the sequential pass and
        ``loss_curve_[i]`` after fine-tuning sweep ``i``. It never increases.
        With `batch_size`, one entry: ``0.5 reconstruction_err_^2``.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during ``fit``. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    SparseNMF : One layer, the factorisation each layer of the stack runs.
    sklearn.decomposition.NMF : scikit-learn's non-negative matrix
        factorisation.

    Notes
    -----
    The fine-tuning is block coordinate descent: each factor is updated with
    the others fixed, on the exact subproblem ``X ~ A H_l B``. ``W_L`` and
    ``H_1`` (one-sided subproblems) use SparseNMF's HALS sweeps or, with a
    sparseness target, Hoyer's projected gradient; the inner ``H_l`` use a
    monotone accelerated projected gradient. The objective never increases,
    and a sweep touches the data twice, ``W_L^T X`` and
    ``X (H_L ... H_1)^T``: ``O(n_samples n_features k_L)`` operations.

    :meth:`transform` solves for the deepest codes with the atoms fixed to
    ``components_`` (non-negative least squares, or its sparseness-constrained
    version), one sample at a time: a sample's codes do not depend on the
    rest of the batch, and :meth:`fit_transform` returns the same codes as
    ``fit(X).transform(X)``. :meth:`transform_layers` does the same at every
    depth with the atoms ``H_l ... H_1``. These are the codes that best
    reconstruct ``X`` at that depth, not the products ``W_L H_L ... H_(l+1)``
    of the fitted factorisation.

    Online fitting (`batch_size` set, or :meth:`partial_fit`) is the online
    version of the sequential pass, with every layer learning at once: each
    mini-batch ``X_b`` gets its first-layer codes ``W_1`` with ``H_1`` fixed,
    then ``W_2`` with ``H_2`` fixed from ``W_1``, and so on (the codes'
    solver of :meth:`transform`, with each layer's sparseness target), and
    every layer folds its ``W_l^T W_l`` and ``W_l^T W_(l-1)`` into running
    statistics and updates its ``H_l`` from them, exactly as a
    :class:`~skpart.SparseNMF` online step does (so the sparseness targets of
    the atoms hold exactly; components whose codes vanished keep their
    atoms). After each step, every layer whose codes and next layer's atoms
    have no sparseness target has its atoms rescaled against its codes by
    powers of two, the next layer taking the factors on its columns, so
    that ``components_`` does not change and the atoms stay bounded. The
    layers start from `init` on the first mini-batch, layer by layer. There
    is no joint fine-tuning (it would need the codes of all samples);
    `fine_tune_iter` is not used. Memory holds one mini-batch and every
    layer's ``k_l x k_l`` and ``k_l x k_(l-1)``
    statistics. The stopping rules are :class:`~skpart.SparseNMF`'s, on the
    summed layer costs and the largest change of a layer.
    `reconstruction_err_` is estimated over the last `n_samples` samples
    streamed with the stacked codes ``W_L`` of each step and the atoms after
    it (not the codes :meth:`transform` returns).

    Scale, as in :class:`~skpart.SparseNMF`: data whose largest entry is
    outside ``[4**-5, 4**10]`` is fitted divided by the power of 4 nearest
    to it; the first layer, ``components_`` and the codes are scaled back
    by its square root (exactly), the errors by it and ``loss_curve_`` by
    its square. A call of `fit`, `fit_transform` or `partial_fit` that
    raises (a ``KeyboardInterrupt`` too) leaves the estimator as it was, and
    a transform whose codes would not be finite raises a ``ValueError``.

    A ``dask.array.Array`` is fitted where its blocks live, every layer on
    the previous layer's codes (which stay on the workers) and the
    fine-tuning from summed statistics; ``partial_fit`` of a dask array
    takes one online step from the blocks' summed statistics; the
    transforms of a dask array are lazy. See the user guide's "Fitting on a
    cluster".

    References
    ----------
    A. Cichocki, R. Zdunek: Multilayer nonnegative matrix factorisation.
    Electronics Letters, 42(16), 947-948, 2006.

    G. Trigeorgis, K. Bousmalis, S. Zafeiriou, B. Schuller: A deep semi-NMF
    model for learning hidden representations. ICML 2014.

    P. O. Hoyer: Non-negative matrix factorization with sparseness
    constraints. Journal of Machine Learning Research, 5, 1457-1469, 2004.

    Examples
    --------
    >>> import numpy as np
    >>> from skpart import MultilayerNMF
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(20, 2) @ rng.rand(2, 8)
    >>> model = MultilayerNMF((4, 2), random_state=0)
    >>> codes = model.fit_transform(X)
    >>> codes.shape, model.components_.shape
    ((20, 2), (2, 8))
    >>> [H.shape for H in model.layers_]
    [(4, 8), (2, 4)]
    >>> [W.shape for W in model.transform_layers(X)]
    [(20, 4), (20, 2)]

    Streamed in mini-batches of 10 rows, every layer learning online:

    >>> online = MultilayerNMF((4, 2), batch_size=10, max_iter=3, tol=0,
    ...                        transform_max_iter=50, random_state=0).fit(X)
    >>> online.components_.shape, online.n_steps_
    ((2, 8), 6)
    """

    #: The convergence warning of the online passes names them and max_iter.
    _online_max_iter_warning = {"where": "in the online passes", "param": "max_iter"}

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), list, tuple],
        "sparseness_components": _SPARSENESS_CONSTRAINT,
        "sparseness_codes": _SPARSENESS_CONSTRAINT,
        "init": [StrOptions({"random", "nndsvd", "nndsvda", "nndsvdar"}), None],
        "solver": [StrOptions({"cd", "mu"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "fine_tune_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "transform_max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "forget_factor": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        # DEVICE_CONSTRAINT's StrOptions overlaps `str`, which makes
        # check_param_validation fail; the name is checked in fit instead.
        "device": [str, torch.device],
    }

    def __init__(
        self,
        n_components,
        *,
        sparseness_components=None,
        sparseness_codes=None,
        init=None,
        solver="cd",
        max_iter=200,
        fine_tune_iter=100,
        tol=1e-4,
        transform_max_iter=None,
        batch_size=None,
        forget_factor=0.7,
        random_state=None,
        verbose=0,
        device="cpu",
    ):
        self.n_components = n_components
        self.sparseness_components = sparseness_components
        self.sparseness_codes = sparseness_codes
        self.init = init
        self.solver = solver
        self.max_iter = max_iter
        self.fine_tune_iter = fine_tune_iter
        self.tol = tol
        self.transform_max_iter = transform_max_iter
        self.batch_size = batch_size
        self.forget_factor = forget_factor
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # -- parameter resolution ---------------------------------------------------
    def _check_params(self, n_samples, n_features):
        """Resolve ranks, per-layer sparseness and per-layer inits (private)."""
        name = type(self).__name__
        ranks = self.n_components
        if isinstance(ranks, Integral):
            ranks = (ranks,)
        ranks = tuple(ranks)
        if not ranks:
            raise ValueError(f"{name} needs at least one layer; got n_components=().")
        for k in ranks:
            if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
                raise ValueError(
                    f"n_components must be positive integers, one per layer; got "
                    f"n_components={self.n_components!r}."
                )
        for idx in range(1, len(ranks)):
            if ranks[idx] > ranks[idx - 1]:
                raise ValueError(
                    f"{name} ranks must not increase with depth: layer {idx + 1} "
                    f"has {ranks[idx]} components, more than the {ranks[idx - 1]} of "
                    f"layer {idx} (n_components={self.n_components!r}). Give them "
                    "in non-increasing order, first layer first."
                )
        if ranks[0] > n_features:
            raise ValueError(
                f"{name}'s first layer has n_components[0]={ranks[0]} components, "
                f"more than the data's n_features={n_features}. Use at most "
                f"{n_features}."
            )
        self._ranks = ranks
        self._sparseness_components = self._per_layer("sparseness_components")
        self._sparseness_codes = self._per_layer("sparseness_codes")
        self._inits = []
        for idx, k in enumerate(ranks):
            n_inputs = n_features if idx == 0 else ranks[idx - 1]
            error = (
                f"init={self.init!r} can only be used when every layer has "
                f"n_components <= min(n_samples, n_inputs); layer {idx + 1} has "
                f"{k} components for n_samples={n_samples}, n_inputs={n_inputs}. "
                "Use init='random' or init=None."
            )
            self._inits.append(
                resolve_init(self.init, k, n_samples, n_inputs, error=error)
            )

    def _per_layer(self, param):
        """One sparseness value (or ``None``) per layer for ``param``."""
        value = getattr(self, param)
        n_layers = len(self._ranks)
        if value is None or isinstance(value, Real):
            return [None if value is None else float(value)] * n_layers
        if len(value) != n_layers:
            raise ValueError(
                f"{param} has {len(value)} values for {n_layers} layers "
                f"(n_components={self.n_components!r}); give one value per layer "
                "or a single value for all."
            )
        out = []
        for v in value:
            if v is not None and (
                not isinstance(v, Real) or isinstance(v, bool) or not 0 <= v <= 1
            ):
                raise ValueError(
                    f"{param} entries must be None or floats in [0, 1]; got "
                    f"{param}={value!r}."
                )
            out.append(None if v is None else float(v))
        return out

    def _solve_codes(self, Xt, components):
        """Deepest codes of ``Xt`` with the atoms ``components`` fixed."""
        max_iter = code_solver_max_iter(self)
        codes, n_iter = solve_codes(
            Xt,
            components,
            solver=self.solver,
            max_iter=max_iter,
            tol=self.tol,
            sparseness_W=self._sparseness_codes[-1],
        )
        self._warn_max_iter(
            n_iter, max_iter, where="in the code solver", param="transform_max_iter"
        )
        return codes

    # -- fit ----------------------------------------------------------------------
    def fit(self, X, y=None):
        """Learn the layers and fine-tune them on ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self.fit_transform(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Learn the layers, fine-tune them on ``X`` and return its codes.

        The codes are those :meth:`transform` returns for ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        W : ndarray of shape (n_samples, ``n_components_``)
            Codes of the last layer.
        """
        with self._transaction():
            if _dask.is_dask_array(X):
                _dask.fit_multilayer_nmf(self, X)
                return self.transform(X)
            if self.batch_size is not None:
                self._fit_online(X, incremental=False)
                return self.transform(X)
            return self._fit_full_batch(X)

    def _fit_full_batch(self, X):
        """The sequential pass and the fine-tuning on all of ``X``; returns
        the codes of ``X``."""
        X = self._validate_X(X, reset=True)
        self._check_params(*X.shape)
        device, generator = self._fit_setup()
        self._data_scale = data_scale(X)
        Xt = self._data_tensor(X, device, reset=True)

        W, layers, n_iter_layers, converged = fit_layers(
            Xt,
            self._ranks,
            inits=self._inits,
            solver=self.solver,
            max_iter=self.max_iter,
            tol=self.tol,
            sparseness_codes=self._sparseness_codes,
            sparseness_components=self._sparseness_components,
            generator=generator,
            verbose=self.verbose,
        )
        for idx, n_iter in enumerate(n_iter_layers):
            if not converged[idx]:
                self._warn_max_iter(
                    n_iter, self.max_iter, where=f"in layer {idx + 1}", param="max_iter"
                )
        W, layers, loss_curve, n_iter = fine_tune(
            Xt,
            W,
            layers,
            max_iter=self.fine_tune_iter,
            tol=self.tol,
            sparseness_codes=self._sparseness_codes[-1],
            sparseness_components=self._sparseness_components,
            verbose=self.verbose,
        )
        self._warn_max_iter(
            n_iter,
            self.fine_tune_iter,
            where="in the fine-tuning",
            param="fine_tune_iter",
        )
        components = effective_atoms(layers)[-1]
        codes = self._solve_codes(Xt, components)

        # The solvers fit X / c: the first layer, the effective atoms and the
        # codes take sqrt(c) each, the errors c and the losses c ** 2.
        c = self._data_scale
        self._set_layers(layers, components, X.dtype)
        self.n_components_ = self._ranks[-1]
        self.n_iter_ = n_iter
        self.n_iter_layers_ = list(n_iter_layers)
        if c != 1:
            loss_curve = [loss * c**2 for loss in loss_curve]
        self.loss_curve_ = loss_curve
        self.reconstruction_err_ = c * float(
            beta_divergence(Xt, codes, components, 2.0, square_root=True)
        )
        self._online_state = None
        self.__dict__.pop("n_steps_", None)  # online fitting only
        self._check_finite_fit()
        return self._fitted_codes(codes, X.dtype)

    def _set_layers(self, layers, components, dtype=None):
        """Store the solvers' layers and effective atoms (tensors) in the
        data's units and ``dtype`` (``None``: the tensors'): the first layer
        and ``components_`` times ``sqrt(_data_scale)``."""
        self.layers_ = [self._fitted_factor(layers[0], dtype)]
        rest = [to_numpy(H) for H in layers[1:]]  # unitless: not rescaled
        self.layers_ += [
            H if dtype is None else H.astype(dtype, copy=False) for H in rest
        ]
        self.components_ = self._fitted_factor(components, dtype)

    def _solver_layers(self, like):
        """``layers_`` as the solvers see them (tensors like ``like``)."""
        first = self._solver_factor(self.layers_[0], like)
        rest = [
            to_tensor(H, device=like.device, dtype=like.dtype) for H in self.layers_[1:]
        ]
        return [first, *rest]

    # -- online fitting: the hooks of NMFBase._fit_online ------------------------
    def _check_online_params(self, chunk):
        """Resolve the parameters on the first mini-batch."""
        self._check_params(*chunk.shape)

    def _start_online_states(self, chunk, first_batch, n_samples):
        """One online state per layer, layer by layer from the first
        mini-batch: the atoms of the layer's ``init`` on its input, then the
        layer's codes as the next layer's input."""
        states, data = [], first_batch
        for idx, k in enumerate(self._ranks):
            # The first layer starts as SparseNMF does (scikit-learn's draws):
            # a one-layer model streams as SparseNMF.
            first = {}
            if idx == 0:
                first = dict(
                    normals=sklearn_normals(self.random_state),
                    svd_normals=sklearn_normals(self.random_state),
                )
            _, H = initialize_nmf(
                data, k, self._inits[idx], generator=self._generator, **first
            )
            states.append(OnlineNMF.start(H, self._sparseness_components[idx]))
            if idx + 1 < len(self._ranks):
                data, _ = solve_codes(
                    data,
                    states[-1].H,
                    solver=self.solver,
                    max_iter=code_solver_max_iter(self),
                    tol=self.tol,
                    sparseness_W=self._sparseness_codes[idx],
                )
        return states

    def _online_step(self, states, batch, *, rho):
        """:func:`~skpart._core._online.multilayer_step` on every layer."""
        _, cost, change, stack_cost = multilayer_step(
            states,
            batch,
            rho=rho,
            solver=self.solver,
            code_max_iter=code_solver_max_iter(self),
            tol=self.tol,
            sparseness_codes=self._sparseness_codes,
            sparseness_components=self._sparseness_components,
        )
        return cost, change, stack_cost

    def _fitted_online_model(self):
        """The atoms ``layers_`` of every layer's state and their statistics."""
        saved = getattr(self, "_online_state", None)
        if saved is None:
            saved = [None] * len(self.layers_)
        atoms = [self.layers_[0] / self._factor_scale, *self.layers_[1:]]
        return atoms, saved

    def _set_online_model(self, states, *, incremental):
        layers = [state.H for state in states]
        self._set_layers(layers, effective_atoms(layers)[-1])
        self.n_components_ = self._ranks[-1]
        if not incremental:
            self.n_iter_layers_ = [self.n_iter_] * len(layers)
            self.loss_curve_ = [0.5 * self.reconstruction_err_**2]
        self._online_state = [save_online_state(state) for state in states]

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update every layer with the data in ``X``, streamed as mini-batches.

        Online multilayer NMF (see Notes): the first call initialises the
        layers from ``X`` and later calls continue from the statistics
        accumulated so far (after a full-batch fit, from ``layers_``). ``X``
        is split into mini-batches of `batch_size` rows (one if `batch_size`
        is None) and streamed once; there is no fine-tuning.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A chunk of the non-negative training data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The updated estimator.
        """
        with self._transaction():
            if _dask.is_dask_array(X):
                _dask.partial_fit_multilayer_nmf(self, X)
            else:
                self._fit_online(X, incremental=True)
        return self

    # -- inference ----------------------------------------------------------------
    def transform(self, X):
        """Codes of the last layer for ``X``, with every ``H_l`` fixed.

        Solves ``X ~ W components_`` for non-negative ``W`` (with its
        sparseness target, if any), sample by sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative data.

        Returns
        -------
        W : ndarray of shape (n_samples, ``n_components_``)
            Codes of the last layer.
        """
        if _dask.is_dask_array(X):
            return _dask.transform(self, X)
        return np.concatenate(self._encode_in_batches(self._last_codes, X))

    def _last_codes(self, X, Xt):
        """The solvers' codes of the last layer of validated ``X`` (tensor
        ``Xt``, divided by ``_data_scale``)."""
        return self._solve_codes(Xt, self._solver_factor(self.components_, Xt))

    def transform_layers(self, X):
        """Codes of every layer for ``X``, with every ``H_l`` fixed.

        The codes of layer ``l`` solve ``X ~ W_l (H_l ... H_1)`` for
        non-negative ``W_l`` (with layer ``l``'s sparseness target, if any),
        sample by sample; the last entry equals :meth:`transform`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Non-negative data.

        Returns
        -------
        codes : list of ndarray
            ``codes[l]`` has shape ``(n_samples, k_(l+1))``, first layer
            first.
        """
        if _dask.is_dask_array(X):
            return _dask.transform_layers(self, X)
        parts = self._encode_in_batches(self._every_layer_codes, X)
        return [np.concatenate(depth) for depth in zip(*parts)]

    def _every_layer_codes(self, X, Xt):
        """The solvers' codes of every layer of validated ``X`` (tensor
        ``Xt``, divided by ``_data_scale``)."""
        codes = layer_codes(
            Xt,
            self._solver_layers(Xt),
            solver=self.solver,
            max_iter=code_solver_max_iter(self),
            tol=self.tol,
            sparseness_codes=self._sparseness_codes,
        )
        return list(codes)
