"""The NonnegativeSparseAutoencoder estimator."""

import copy
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning

from .._core._autoencoder import (
    History,
    Objective,
    SparseAutoencoder,
    copy_training_state,
    initialize_autoencoder,
    make_optimizer,
    reconstruction_mse,
    train,
)
from .._core._device import randperm, resolve_dtype
from ..utils._sklearn_compat import (
    Interval,
    StrOptions,
    _fit_context,
    check_is_fitted,
)
from ..utils._warnings import warn
from . import _dask
from ._base import (
    DEVICE_CONSTRAINT,
    DEVICE_DOC,
    RANDOM_STATE_DOC,
    PartBase,
    to_numpy,
    to_tensor,
)
from ._streaming import MemmapRows, scan_memmap, streamable, validated_chunks

#: Rows of a streamed ``numpy.memmap`` that the NMF initialisations factorise.
_STREAMED_NMF_INIT_ROWS = 10000
#: Rows per chunk when ``transform`` streams a ``numpy.memmap``.
_STREAMED_TRANSFORM_ROWS = 4096

_PARAMS = {
    "encoder_weight": "encoder_components_",
    "encoder_bias": "encoder_intercept_",
    "decoder_weight": "components_",
    "decoder_bias": "decoder_intercept_",
}


class _TrainingData(NamedTuple):
    """What :meth:`NonnegativeSparseAutoencoder._training_data` prepares."""

    #: ``X / scale`` as a tensor, or :class:`MemmapRows` (maybe scaled).
    X: object
    #: ``input_scale_`` of the fit.
    scale: float
    #: Largest absolute value of this ``X``.
    peak: float
    device: torch.device
    generator: torch.Generator


class _ScaledRows:
    """The rows of a :class:`MemmapRows`, divided by ``scale`` as they are
    read (the same interface: ``shape``, ``dtype``, ``device``, ``numel``,
    ``mean``, indexing, ``subset`` and ``head``)."""

    def __init__(self, rows, scale):
        self._rows, self._scale = rows, scale
        self.shape, self.dtype, self.device = rows.shape, rows.dtype, rows.device

    def numel(self):
        return self._rows.numel()

    def mean(self, dim=0):
        return self._rows.mean(dim) / self._scale

    def __getitem__(self, key):
        return self._rows[key] / self._scale

    def subset(self, idx):
        return _ScaledRows(self._rows.subset(idx), self._scale)

    def head(self, n):
        return self._rows.head(n) / self._scale


def _copy_generator(generator):
    """A new generator in the state of ``generator`` (drawing from it leaves
    ``generator`` as it was)."""
    out = torch.Generator(device=generator.device)
    out.set_state(generator.get_state())
    return out


class NonnegativeSparseAutoencoder(PartBase):
    """Shallow autoencoder with non-negative decoder atoms and a sparse code.

    A one-hidden-layer autoencoder whose hidden code ``h`` (one sigmoid unit per
    component) is pushed towards a low mean activation and whose decoder
    weights, the atoms or "parts" in ``components_``, are kept non-negative by
    projection after every optimiser step (Lemme et al., 2012) or encouraged to
    be non-negative by an asymmetric weight decay (Hosseini-Asl et al., 2016).
    Trained by mini-batch Adam or SGD, or full-batch L-BFGS, on a PyTorch core;
    used like any scikit-learn transformer.

    The model is

    .. math::

        h = \\sigma(x W_e^\\top / s + b_e), \\qquad
        \\hat x = s \\, g(h W_d + b_d),

    with :math:`W_e, W_d` of shape ``(n_components, n_features)`` (``W_d`` is
    ``components_``, ``W_e`` is ``encoder_components_``), :math:`\\sigma` the
    logistic sigmoid, :math:`g` the ``decoder_activation`` and :math:`s` the
    data scale ``input_scale_`` (below). On a batch :math:`B` of :math:`n_B`
    samples of :math:`m` features it minimises

    .. math::

        J = \\frac{1}{n_B m} \\sum_{i \\in B} \\sum_{f=1}^{m}
            \\ell(\\hat x_{if} / s, x_{if} / s)
          + \\beta \\sum_{j=1}^{k} S(p, t_j)
          + \\frac{\\lambda}{2} \\sum_{W \\in \\mathcal{C}} \\sum_{j, f}
            \\phi(W_{jf}),
        \\qquad t_j = \\frac{1}{n_B} \\sum_{i \\in B} h_{ij},

    where :math:`\\ell` is the squared error (``loss="mse"``) or the binary
    cross-entropy (``loss="bce"``), so the first term is a *mean over samples
    and features*; :math:`\\beta` is ``sparsity_weight`` multiplying a *sum
    over the* :math:`k` *hidden units* of the sparsity penalty :math:`S` on
    the unit's mean activation :math:`t_j` and the target :math:`p`
    (``sparsity_target``):

    - ``"kl"``: :math:`p \\log \\frac{p}{t} + (1 - p) \\log \\frac{1 - p}{1 - t}`,
    - ``"l2"``: :math:`(p - t)^2`,
    - ``"epsilon_l1"``: :math:`\\sqrt{(p - t)^2 + \\epsilon}`,
    - ``"log"``: :math:`\\log(1 + (p - t)^2)`;

    the last term is present only with ``nonnegativity="asymmetric_decay"``:
    :math:`\\lambda` is ``decay_weight``, :math:`\\mathcal{C}` holds
    :math:`W_d` (and :math:`W_e` when ``nonnegative_encoder=True``), and
    :math:`\\phi(w) = \\psi(w)` for :math:`w < 0`, :math:`\\phi(w) = r\\,
    \\psi(w)` for :math:`w \\ge 0` (:math:`r` is ``decay_ratio``) with
    :math:`\\psi(w) = w^2` (``decay_norm="l2"``), :math:`|w|` (``"l1"``) or
    :math:`\\sqrt{w^2 + \\epsilon} - \\sqrt{\\epsilon} + w^2` (``"l1_l2"``).
    With ``nonnegativity="projection"`` the weights in :math:`\\mathcal{C}`
    are instead clipped to :math:`\\ge 0` after every step.

    **Scale of the data.** :math:`s` is the largest absolute value of the
    data the weights were initialised on (by ``fit`` without ``warm_start``
    or the first ``partial_fit``; 1 if it is all zero): the model is trained on
    ``X / s``, whose entries lie in [-1, 1], so the results do not depend on
    the scale of ``X``. Fitting ``c * X`` gives the same codes, weights and
    ``loss_curve_`` as fitting ``X`` (up to rounding), and
    :meth:`inverse_transform` returns ``c`` times the reconstruction. Data in
    [0, 1] whose largest value is 1 (images divided by 255, binary data) has
    :math:`s = 1`. A single outlier sets the scale: clip or scale such data
    beforehand. :meth:`partial_fit` fixes :math:`s` at its first call.

    **Scale of** ``sparsity_weight``. Because the reconstruction term is a mean
    over features, :math:`\\beta` here equals :math:`2 \\beta' / m` for the
    :math:`\\beta'` of Ng's notes and of NCAE, whose reconstruction term is
    :math:`\\frac{1}{2} \\sum_f` per sample: their :math:`\\beta' = 3` is
    :math:`\\beta \\approx 0.0077` on MNIST (:math:`m = 784`). Likewise their
    decay :math:`\\alpha' = 0.003` is ``decay_weight`` :math:`\\approx 7.7
    \\times 10^{-6}`. Useful values of ``sparsity_weight`` lie around
    ``1e-3`` to ``1e-2``; larger values trade reconstruction for sparsity.

    In scikit-learn's orientation the codes returned by :meth:`transform` are
    the rows of ``W`` (one per sample) and ``components_`` holds the atoms (one
    per row), as in :class:`~sklearn.decomposition.NMF`.

    Parameters
    ----------
    n_components : int, default=100
        Number of hidden units (atoms).
    sparsity : {"kl", "l2", "epsilon_l1", "log"} or None, default="kl"
        Penalty on the mean activation of each hidden unit; None for none.
    sparsity_target : float in (0, 1), default=0.05
        Target mean activation :math:`p`.
    sparsity_weight : float >= 0, default=1e-3
        Weight :math:`\\beta` of the sparsity penalty (see the scale above).
    epsilon : float > 0, default=1e-6
        Smoothing constant of the ``"epsilon_l1"`` sparsity penalty and of the
        ``"l1_l2"`` decay norm (unlike :class:`~sklearn.neural_network.
        MLPRegressor`, not Adam's constant).
    nonnegativity : {"projection", "asymmetric_decay"} or None, \
            default="projection"
        How the decoder (and with ``nonnegative_encoder`` the encoder) weights
        are made non-negative. ``"projection"`` guarantees that
        ``components_`` has no negative entry at any time.
    decay_weight : float >= 0, default=1e-5
        Weight :math:`\\lambda` of the asymmetric decay.
    decay_ratio : float >= 0, default=0.0
        Decay of the non-negative weights relative to the negative ones;
        0 is NCAE (only negative weights decay), 1 is plain weight decay.
    decay_norm : {"l2", "l1", "l1_l2"}, default="l2"
        Norm :math:`\\psi` of the asymmetric decay.
    nonnegative_encoder : bool, default=False
        Also constrain the encoder weights (NCAE constrains both layers; the
        projection papers only the decoder).
    decoder_activation : {"sigmoid", "identity", "relu"}, default="sigmoid"
        Output activation :math:`g`.
    loss : {"mse", "bce"}, default="mse"
        Reconstruction loss. ``"bce"`` needs data in [0, 1] and
        ``decoder_activation="sigmoid"``.
    weight_init : {"glorot_uniform", "he_normal", "orthogonal", "normal", \
            "nmf", "nmf_identity"}, default="glorot_uniform"
        Initial weights. The encoder bias starts at 0; with the four random
        methods the decoder bias starts at the output activation's inverse of
        the mean training sample (its logit, clipped into [0.001, 0.999], for
        the sigmoid), so training does not begin by learning the background.
        Constrained weights are projected with ``nonnegativity="projection"``.
        ``"nmf"`` starts the decoder from an NMF of the training data (NNDSVDa
        then HALS) with the matching pseudo-inverse encoder; ``"nmf_identity"``
        factorises the identity matrix of size ``n_features`` into non-negative
        encoder and decoder factors whose product is close to the identity.
        Both NMF starts need non-negative data.
    solver : {"adam", "sgd", "lbfgs"}, default="adam"
        Optimiser. ``"lbfgs"`` is full-batch L-BFGS with a strong-Wolfe line
        search (one iteration per epoch; ``learning_rate_init`` and
        ``batch_size`` are not used).
    learning_rate_init : float > 0, default=3e-3
        Step size of Adam and SGD.
    batch_size : int, default=64
        Mini-batch size (clipped to the number of samples).
    momentum : float in [0, 1], default=0.9
        Momentum of SGD.
    max_iter : int, default=200
        Maximum number of epochs (L-BFGS iterations for ``"lbfgs"``).
    tol : float >= 0, default=1e-5
        Improvement of the training objective (or of the validation score with
        ``early_stopping``) below which an epoch counts as no improvement.
        The objective is a mean over features, so this is an absolute change
        in mean squared error per entry of ``X / input_scale_``.
    n_iter_no_change : int, default=10
        Training stops after more than this many consecutive epochs without an
        improvement by ``tol``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, stop on its
        score (negative reconstruction MSE) and keep the best weights.
    validation_fraction : float in (0, 1), default=0.1
        Fraction of the training data held out with ``early_stopping``.
    shuffle : bool, default=True
        Shuffle the samples at every epoch.
    {random_state}
        It draws the initial weights, the epoch permutations and the
        validation split.
    verbose : int, default=0
        Print one line per epoch (objective, reconstruction loss, mean
        activation, validation score, elapsed time).
    warm_start : bool, default=False
        Continue from the fitted weights on the next ``fit`` (with a fresh
        optimiser state) instead of initialising again.
    {device}

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Decoder weights :math:`W_d`, the atoms.
    n_components_ : int
        Number of components.
    encoder_components_ : ndarray of shape (n_components, n_features)
        Encoder weights :math:`W_e` (row ``j`` is unit ``j``'s filter).
    encoder_intercept_ : ndarray of shape (n_components,)
        Encoder bias :math:`b_e`.
    decoder_intercept_ : ndarray of shape (n_features,)
        Decoder bias :math:`b_d`.
    input_scale_ : float
        Data scale :math:`s`: the largest absolute value of the data the
        weights were initialised on, 1.0 if it was all zero.
    loss_curve_ : list of float
        Mean training objective of every epoch (on ``X / input_scale_``).
    validation_scores_ : list of float or None
        Validation score (negative reconstruction MSE of
        ``X / input_scale_``) after every epoch with ``early_stopping``, else
        None.
    best_validation_score_ : float or None
        Best validation score with ``early_stopping``, else None.
    best_loss_ : float or None
        Lowest epoch objective without ``early_stopping``, else None.
    n_iter_ : int
        Number of epochs run (over all ``partial_fit`` calls since the start).
    reconstruction_err_ : float
        Mean squared reconstruction error per entry on the training data after
        fitting.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    SparseNMF : NMF with Hoyer sparseness constraints.
    MultilayerNMF : Stacked NMF.
    sklearn.neural_network.MLPRegressor : The training-loop parameters follow it.

    Notes
    -----
    The sparsity penalty uses the mean activation over each mini-batch, so the
    result depends on ``batch_size``; :meth:`transform` is a fixed function of
    each sample.

    Streamed data. A ``numpy.memmap`` given to :meth:`fit`,
    :meth:`partial_fit` or :meth:`transform` is never loaded whole: it is
    validated chunk by chunk (its mean row and range computed on the way),
    and each mini-batch's rows are read from it when the batch is drawn, with
    the same permutations from the generator, so the mini-batches are those
    of the same data in memory (the mean row that starts the decoder bias is
    summed in float64 chunk by chunk, the only difference). The memmap's
    pages are released as it is read, so memory does not grow with the
    number of samples. The reads are random rows: for data larger than the
    page cache, shuffled on disk once beforehand and ``shuffle=False`` reads
    sequentially. With ``weight_init="nmf"`` or ``"nmf_identity"`` the
    starting factorisation uses the first 10 000 rows, and ``solver="lbfgs"``
    (full-batch) loads the data.

    A call to :meth:`fit` or :meth:`partial_fit` that raises (invalid data, a
    diverged training, an interrupt) leaves the estimator as it was before
    the call. The fitted arrays are copies: a later call never changes an
    array already read from the estimator.

    Fitted state is stored as NumPy arrays; the torch module is rebuilt on
    demand, so a model fitted on a GPU pickles and loads on a machine without
    one. ``partial_fit`` keeps the optimiser state between calls within a
    session (not across pickling).

    References
    ----------
    .. [1] E. Hosseini-Asl, J. M. Zurada and O. Nasraoui, "Deep learning of
       part-based representation of data using sparse autoencoders with
       nonnegativity constraints", IEEE Trans. Neural Netw. Learn. Syst. 27(12),
       2016.
    .. [2] A. Lemme, R. F. Reinhart and J. J. Steil, "Online learning and
       generalization of parts-based image representations by non-negative
       sparse autoencoders", Neural Networks 33, 2012.
    .. [3] A. Ng, "Sparse autoencoder", CS294A lecture notes, Stanford, 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from skpart import NonnegativeSparseAutoencoder
    >>> X = np.random.RandomState(0).rand(50, 16)
    >>> ae = NonnegativeSparseAutoencoder(n_components=4, max_iter=3, random_state=0)
    >>> codes = ae.fit_transform(X)
    >>> codes.shape, ae.components_.shape
    ((50, 4), (4, 16))
    >>> bool((ae.components_ >= 0).all())
    True
    """

    _positive_only = False
    # Mini-batches are dense: sparse input is accepted and densified once.
    _densify_sparse = True

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "sparsity": [StrOptions({"kl", "l2", "epsilon_l1", "log"}), None],
        "sparsity_target": [Interval(Real, 0, 1, closed="neither")],
        "sparsity_weight": [Interval(Real, 0, None, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "nonnegativity": [StrOptions({"projection", "asymmetric_decay"}), None],
        "decay_weight": [Interval(Real, 0, None, closed="left")],
        "decay_ratio": [Interval(Real, 0, None, closed="left")],
        "decay_norm": [StrOptions({"l2", "l1", "l1_l2"})],
        "nonnegative_encoder": ["boolean"],
        "decoder_activation": [StrOptions({"identity", "sigmoid", "relu"})],
        "loss": [StrOptions({"mse", "bce"})],
        "weight_init": [
            StrOptions(
                {
                    "glorot_uniform",
                    "he_normal",
                    "orthogonal",
                    "normal",
                    "nmf",
                    "nmf_identity",
                }
            )
        ],
        "solver": [StrOptions({"adam", "sgd", "lbfgs"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "device": DEVICE_CONSTRAINT,
    }

    def __init__(
        self,
        n_components=100,
        *,
        sparsity="kl",
        sparsity_target=0.05,
        sparsity_weight=1e-3,
        epsilon=1e-6,
        nonnegativity="projection",
        decay_weight=1e-5,
        decay_ratio=0.0,
        decay_norm="l2",
        nonnegative_encoder=False,
        decoder_activation="sigmoid",
        loss="mse",
        weight_init="glorot_uniform",
        solver="adam",
        learning_rate_init=3e-3,
        batch_size=64,
        momentum=0.9,
        max_iter=200,
        tol=1e-5,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        device="cpu",
    ):
        self.n_components = n_components
        self.sparsity = sparsity
        self.sparsity_target = sparsity_target
        self.sparsity_weight = sparsity_weight
        self.epsilon = epsilon
        self.nonnegativity = nonnegativity
        self.decay_weight = decay_weight
        self.decay_ratio = decay_ratio
        self.decay_norm = decay_norm
        self.nonnegative_encoder = nonnegative_encoder
        self.decoder_activation = decoder_activation
        self.loss = loss
        self.weight_init = weight_init
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.momentum = momentum
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device

    # -- fitting ---------------------------------------------------------------
    def _objective(self):
        return Objective(
            loss=self.loss,
            sparsity=self.sparsity,
            sparsity_target=float(self.sparsity_target),
            sparsity_weight=float(self.sparsity_weight),
            epsilon=float(self.epsilon),
            nonnegativity=self.nonnegativity,
            decay_weight=float(self.decay_weight),
            decay_ratio=float(self.decay_ratio),
            decay_norm=self.decay_norm,
            nonnegative_encoder=bool(self.nonnegative_encoder),
        )

    def _check_params_vs_input(self, low, high):
        """Check the data, whose entries lie in ``[low, high]``, against
        ``loss`` and ``weight_init``."""
        name = type(self).__name__
        if self.loss == "bce":
            if self.decoder_activation != "sigmoid":
                raise ValueError(
                    f"{name}: loss='bce' needs decoder_activation='sigmoid', got "
                    f"decoder_activation={self.decoder_activation!r}."
                )
            if low < 0 or high > 1:
                raise ValueError(
                    f"{name}: loss='bce' needs data in [0, 1]; input X has values "
                    f"in [{low:.3g}, {high:.3g}]. Scale X (e.g. with "
                    "MinMaxScaler) or use loss='mse'."
                )
        if self.weight_init in ("nmf", "nmf_identity") and low < 0:
            raise ValueError(
                f"Negative values in data passed to {name} (input X): "
                f"weight_init={self.weight_init!r} needs non-negative data."
            )

    def _build_module(self, n_features, dtype, device):
        return SparseAutoencoder(
            n_features,
            self.n_components,
            self.decoder_activation,
            dtype=dtype,
            device=device,
        )

    def _module_from_attributes(self, device, dtype=None):
        """Torch module holding the fitted weights (rebuilt from NumPy)."""
        dtype = resolve_dtype(self.components_.dtype) if dtype is None else dtype
        module = self._build_module(self.n_features_in_, dtype, device)
        with torch.no_grad():
            for pname, attr in _PARAMS.items():
                getattr(module, pname).copy_(
                    to_tensor(getattr(self, attr), device=device, dtype=dtype)
                )
        return module

    def _fit(self, X, *, incremental):
        """``fit``, or one epoch of ``partial_fit`` when ``incremental``.

        A call that raises (invalid data, divergence, an interrupt, a
        ``ConvergenceWarning`` turned into an error) leaves the estimator as
        it was: the body trains copies of the module, the optimiser state,
        the training record and the generator, and on any exception the
        estimator's attributes are put back as they were before the call.
        """
        if incremental and self.early_stopping:
            raise ValueError(
                f"{type(self).__name__}.partial_fit does not support "
                "early_stopping=True; use fit."
            )
        with self._transaction():
            self._fit_body(X, incremental=incremental)
        return self

    def _fit_body(self, X, *, incremental):
        """The work of :meth:`_fit`, which undoes it when it raises."""
        first_call = not hasattr(self, "components_")
        # A partial_fit after a fit or partial_fit of this session continues
        # from the module, the optimiser state, the training record and the
        # generator (copies of them, kept only if the call succeeds).
        continuing = incremental and not first_call and hasattr(self, "_module")
        # partial_fit and warm_start start from the fitted weights.
        resume = not first_call and (incremental or self.warm_start)
        data = self._training_data(X, resume=resume, continuing=continuing)
        objective = self._objective()
        if continuing:
            module, optimizer = copy_training_state(self._module, self._optimizer)
            history = copy.deepcopy(self._history)
        else:
            module = self._starting_module(
                data.X, data.device, data.generator, objective, resume=resume
            )
            optimizer = make_optimizer(
                module, self.solver, self.learning_rate_init, self.momentum
            )
            history = self._starting_history(incremental=incremental, resume=resume)
        X_train, X_val = self._validation_split(data.X, data.generator)
        self._train(
            module,
            optimizer,
            objective,
            X_train,
            X_val=X_val,
            history=history,
            data=data,
            incremental=incremental,
        )
        reconstruction_err = (
            reconstruction_mse(module, data.X) * data.scale * data.scale
        )
        # Commit: nothing of the estimator has changed before this point
        # (except what validation and the device setup set, undone on error).
        self._module, self._optimizer, self._history = module, optimizer, history
        self._device, self._generator = data.device, data.generator
        self._store(module, history, data.scale)
        self.reconstruction_err_ = reconstruction_err
        if not incremental and not history.converged:
            warn(
                f"{type(self).__name__}: maximum number of epochs {self.max_iter} "
                "reached and the optimisation has not converged yet. Increase "
                "max_iter to improve convergence.",
                ConvergenceWarning,
            )

    def _training_data(self, X, *, resume, continuing):
        """Validate ``X``; return it as a :class:`_TrainingData`.

        The training tensor holds ``X / input_scale_``: the largest absolute
        value of ``X`` on a new fit, the stored scale when resuming. A
        ``numpy.memmap`` is validated chunk by chunk and wrapped in
        :class:`MemmapRows`, which reads the rows of each mini-batch when it is
        drawn, so the data is never loaded whole; except with L-BFGS, which is
        full-batch. ``continuing`` keeps the device and dtype of the session's
        module and a copy of its generator; otherwise they are resolved afresh.
        """
        streamed = isinstance(X, np.memmap) and streamable(X) and self.solver != "lbfgs"
        if streamed:
            X_dtype, mean, low, high = scan_memmap(self, X, reset=not resume)
        else:
            X = self._validate_X(X, reset=not resume)
            low, high = float(X.min()), float(X.max())
            X_dtype = X.dtype
        self._check_params_vs_input(low, high)
        # A dask fit streams blocks by partial_fit with the whole array's peak.
        peak = getattr(self, "_stream_peak", None) or max(abs(low), abs(high))
        scale = self.input_scale_ if resume else (peak if peak > 0 else 1.0)
        if continuing:
            device, generator = self._device, _copy_generator(self._generator)
            dtype = self._module.decoder_weight.dtype
        else:
            device, generator = self._fit_setup()
            dtype = resolve_dtype(X_dtype)
        if streamed:
            Xt = MemmapRows(
                X,
                dtype=np.float32 if dtype == torch.float32 else np.float64,
                device=device,
                mean=torch.from_numpy(mean).to(device=device, dtype=dtype),
            )
            if scale != 1.0:
                Xt = _ScaledRows(Xt, scale)
        else:
            Xt = to_tensor(X, device=device, dtype=dtype)
            if scale != 1.0 and Xt.device.type == "cpu":
                Xt = Xt / scale  # Xt may share the caller's memory
            elif scale != 1.0:
                Xt.div_(scale)  # a copy on the device already
        return _TrainingData(Xt, scale, peak, device, generator)

    def _starting_module(self, Xt, device, generator, objective, *, resume):
        """The module training starts from: the fitted weights when resuming,
        else a new module initialised by ``weight_init`` on ``Xt``.

        The NMF initialisations of streamed data factorise its first rows only.
        """
        if resume:
            return self._module_from_attributes(device, Xt.dtype)
        module = self._build_module(Xt.shape[1], Xt.dtype, device)
        X_init = Xt
        if not torch.is_tensor(Xt) and self.weight_init in ("nmf", "nmf_identity"):
            X_init = Xt.head(_STREAMED_NMF_INIT_ROWS)
        initialize_autoencoder(module, X_init, self.weight_init, generator=generator)
        objective.project(module)
        return module

    def _starting_history(self, *, incremental, resume):
        """The training record: empty, or continuing the stored loss curve when
        resuming (a warm-started fit counts its own epochs)."""
        if not resume:
            return History()
        return History(
            loss_curve=list(self.loss_curve_),
            n_iter=self.n_iter_ if incremental else 0,
        )

    def _validation_split(self, Xt, generator):
        """``(X_train, X_val)``: with ``early_stopping``, a random
        ``validation_fraction`` of the rows is held out; else ``X_val`` is None.
        """
        if not self.early_stopping:
            return Xt, None
        n_val = int(round(self.validation_fraction * Xt.shape[0]))
        if n_val < 2 or Xt.shape[0] - n_val < 1:
            raise ValueError(
                f"The validation set of {type(self).__name__} is too small "
                f"({n_val} samples). Increase validation_fraction or the "
                "number of samples."
            )
        perm = randperm(Xt.shape[0], generator, device=Xt.device)
        if not torch.is_tensor(Xt):
            return Xt.subset(perm[n_val:]), Xt.subset(perm[:n_val])
        return Xt[perm[n_val:]], Xt[perm[:n_val]]

    def _train(
        self, module, optimizer, objective, X, *, X_val, history, data, incremental
    ):
        """Run :func:`train` with the estimator's settings; a diverged
        objective is reported as ``ValueError`` saying what to change."""
        try:
            train(
                module,
                optimizer,
                objective,
                X,
                history=history,
                max_iter=self.max_iter,
                batch_size=self.batch_size,
                solver=self.solver,
                X_val=X_val,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                shuffle=self.shuffle,
                generator=data.generator,
                verbose=self.verbose,
                incremental=incremental,
            )
        except FloatingPointError as exc:
            raise self._diverged(str(exc), data) from exc
        except RuntimeError as exc:
            # torch refuses an update that the dtype cannot hold (the step
            # size of a huge learning_rate_init in float32, say).
            if "without overflow" not in str(exc):
                raise
            reason = f"an update overflowed {str(X.dtype).replace('torch.', '')}"
            raise self._diverged(reason, data) from exc

    def _diverged(self, reason, data):
        """The ``ValueError`` reporting a diverged training, with the advice."""
        advice = (
            "Decrease learning_rate_init or the penalty weights "
            "(sparsity_weight, decay_weight)."
        )
        if data.peak > data.scale:
            # Only when resuming: a new fit scales X to at most 1.
            advice = (
                f"X has values up to {data.peak:.3g} in absolute value, "
                f"{data.peak / data.scale:.3g} times input_scale_="
                f"{data.scale:.3g}, the largest of the data the weights were "
                "initialised on: scale X as that data was scaled, or fit a "
                f"new model. Otherwise: {advice[0].lower()}{advice[1:]}"
            )
        return ValueError(
            f"{type(self).__name__}: training diverged ({reason}) and the "
            f"estimator was left as it was before this call. {advice}"
        )

    def _store(self, module, history, scale):
        """Store the trained weights and the training record as attributes.

        The arrays are copies: a later ``partial_fit`` never changes an array
        that the user holds.
        """
        for pname, attr in _PARAMS.items():
            setattr(self, attr, to_numpy(getattr(module, pname)).copy())
        self.input_scale_ = scale
        self.n_components_ = self.components_.shape[0]
        self.loss_curve_ = list(history.loss_curve)
        self.n_iter_ = history.n_iter
        best = history.stopping.best
        if self.early_stopping:
            self.validation_scores_ = list(history.validation_scores)
            # The rule saw the scores negated.
            self.best_validation_score_ = -best
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = best

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the autoencoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        if _dask.is_dask_array(X):
            with self._transaction():
                return _dask.fit_autoencoder(self, X)
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One pass (epoch) of training over ``X``, continuing from the last call.

        The first call initialises the weights and fixes ``input_scale_``;
        later calls keep the weights, the optimiser state and the random
        generator, so data of every call should be on the scale of the first.
        A call that raises leaves the estimator as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, incremental=True)

    # -- inference -------------------------------------------------------------
    def _inference_module(self, dtype):
        """Torch module from the fitted attributes, on the inference device."""
        return self._module_from_attributes(self._inference_device(), dtype)

    def transform(self, X):
        """Hidden codes ``sigmoid(X W_e^T + b_e)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        codes : ndarray of shape (n_samples, n_components)
            Codes, in the dtype of ``X`` (float32 or float64).
        """
        check_is_fitted(self)
        if _dask.is_dask_array(X):
            return _dask.transform(self, X)
        if isinstance(X, np.memmap) and streamable(X):
            size = max(self.batch_size, _STREAMED_TRANSFORM_ROWS)
            chunks = validated_chunks(self, X, size, reset=False)
            return np.concatenate([self._encode(chunk) for _, chunk in chunks])
        return self._encode(self._validate_X(X, reset=False))

    def _encode(self, X):
        """Codes of validated ``X``."""
        dtype = resolve_dtype(X.dtype)
        module = self._inference_module(dtype)
        Xt = to_tensor(X, device=module.decoder_weight.device, dtype=dtype)
        if self.input_scale_ != 1.0:
            Xt = Xt / self.input_scale_
        with torch.no_grad():
            return to_numpy(module.encode(Xt))

    def fit_transform(self, X, y=None):
        """Fit, then return the codes of ``X`` (same as ``fit(X).transform(X)``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        codes : ndarray of shape (n_samples, n_components)
            Codes of the training data.
        """
        return self.fit(X).transform(X)

    def _decode(self, codes, components):
        z = codes @ components + self.decoder_intercept_.astype(codes.dtype)
        if self.decoder_activation == "sigmoid":
            z = expit(z)
        elif self.decoder_activation == "relu":
            z = np.maximum(z, 0)
        if self.input_scale_ != 1.0:
            z *= self.input_scale_
        return z

    def score(self, X, y=None):
        """Negative mean squared reconstruction error per entry (greater is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
            ``-mean((X - inverse_transform(transform(X))) ** 2)``.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        # The codes of the validated array, not transform(X): that would check
        # the feature names again, on an array that has none.
        X_hat = self.inverse_transform(self._encode(X))
        return -float(np.mean((np.asarray(X, dtype=np.float64) - X_hat) ** 2))

    # -- persistence -----------------------------------------------------------
    def __getstate__(self):
        state = super().__getstate__()
        for key in ("_module", "_optimizer", "_history"):
            state.pop(key, None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


if NonnegativeSparseAutoencoder.__doc__:  # None under python -OO
    NonnegativeSparseAutoencoder.__doc__ = NonnegativeSparseAutoencoder.__doc__.replace(
        "{random_state}", RANDOM_STATE_DOC
    ).replace("{device}", DEVICE_DOC)
