"""The SparseNMF estimator: scikit-learn's NMF plus Hoyer's sparseness constraints."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_array
from sklearn.utils.validation import check_non_negative

from .._core._beta import beta_divergence
from .._core._device import randperm
from .._core._init import initialize_nmf
from .._core._nmf import fit_nmf, solve_codes
from .._core._online import OnlineNMF, minibatch_step
from .._core._operator import DataOperator
from ..utils._sklearn_compat import Interval, StrOptions, _fit_context
from ..utils._warnings import warn
from . import _dask
from ._base import insert_shared_doc
from ._nmf_base import (
    NMFBase,
    code_solver_max_iter,
    data_scale,
    resolve_init,
    save_online_state,
    sklearn_normals,
)

_BETA_LOSS = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}


def _check_init(A, shape, whom):
    """Check a user-given starting factor (scikit-learn's messages)."""
    A = check_array(A)
    for axis, name in ((0, "first"), (1, "second")):
        if shape[axis] != "auto" and A.shape[axis] != shape[axis]:
            raise ValueError(
                f"Array with wrong {name} dimension passed to {whom}. Expected "
                f"{shape[axis]}, but got {A.shape[axis]}."
            )
    check_non_negative(A, whom)
    if np.max(A) == 0:
        raise ValueError(f"Array passed to {whom} is full of zeros.")
    return A


@insert_shared_doc
class SparseNMF(NMFBase):
    """Non-negative matrix factorisation with Hoyer's sparseness constraints.

    A drop-in replacement for :class:`sklearn.decomposition.NMF` (same
    parameters, attributes, methods, messages and warnings) on a PyTorch core,
    that adds the sparseness constraints of Hoyer (2004). Find non-negative
    ``W`` (codes, one row per sample) and ``H`` (``components_``, one row per
    atom) with ``X ~ W H``.

    The objective function is scikit-learn's:

    .. math::

        L(W, H) &= 0.5 * ||X - WH||_{loss}^2

                &+ alpha\\_W * l1\\_ratio * n\\_features * ||vec(W)||_1

                &+ alpha\\_H * l1\\_ratio * n\\_samples * ||vec(H)||_1

                &+ 0.5 * alpha\\_W * (1 - l1\\_ratio) * n\\_features * ||W||_{Fro}^2

                &+ 0.5 * alpha\\_H * (1 - l1\\_ratio) * n\\_samples * ||H||_{Fro}^2,

    minimised over :math:`W \\geq 0, H \\geq 0` subject to, when they are set,

    .. math::

        \\sigma(H_{j,:}) = s_{components} \\; \\forall j, \\qquad
        \\sigma(W_{i,:}) = s_{codes} \\; \\forall i, \\qquad
        \\sigma(x) = \\frac{\\sqrt{n} - ||x||_1 / ||x||_2}{\\sqrt{n} - 1},

    where :math:`||A||_{Fro}^2 = \\sum_{i,j} A_{ij}^2`,
    :math:`||vec(A)||_1 = \\sum_{i,j} abs(A_{ij})`, :math:`||X - WH||_{loss}`
    is the Frobenius norm or the beta-divergence chosen by ``beta_loss``, and
    :math:`\\sigma` is Hoyer's sparseness of a vector of length :math:`n`
    (``n_features`` for an atom, ``n_components`` for a code). The penalties
    are scaled by ``n_features`` for ``W`` and ``n_samples`` for ``H`` exactly
    as in scikit-learn.

    Orientation: the transformed data is ``W`` and the atoms are the rows of
    ``H = components_`` (scikit-learn's naming). Hoyer's paper factorises the
    transposed data, :math:`V \\approx W_{Hoyer} H_{Hoyer}` with one sample per
    column, so his :math:`W` holds the atoms as columns
    (:math:`W_{Hoyer} = H^T`) and his :math:`H` the codes
    (:math:`H_{Hoyer} = W^T`). His :math:`S_w` is ``sparseness_components``.
    His :math:`S_h` constrains each row of :math:`H_{Hoyer}`, i.e. one
    component's activations across all samples; ``sparseness_codes`` instead
    constrains each sample's code vector (a column of :math:`H_{Hoyer}`), so
    that ``transform`` of one sample never depends on the other samples in the
    batch.

    Parameters
    ----------
    n_components : int or {'auto'} or None, default='auto'
        Number of components. If `None`, all features are kept. If
        `n_components='auto'`, the number of components is inferred from the
        shapes of W or H (``init='custom'``), else all features are kept.

    init : {'random', 'nndsvd', 'nndsvda', 'nndsvdar', 'custom'}, default=None
        Method used to initialise the procedure (scikit-learn's methods, run
        on the torch device):

        - `None`: 'nndsvda' if n_components <= min(n_samples, n_features),
          otherwise random.
        - `'random'`: non-negative random matrices, scaled with
          `sqrt(X.mean() / n_components)`: scikit-learn's draws, so the same
          `random_state` gives the same start as scikit-learn's NMF.
        - `'nndsvd'`: Nonnegative Double Singular Value Decomposition (NNDSVD)
          initialisation (better for sparseness).
        - `'nndsvda'`: NNDSVD with zeros filled with the average of X (better
          when sparsity is not desired).
        - `'nndsvdar'`: NNDSVD with zeros filled with small random values.
        - `'custom'`: use the `W` and `H` given to `fit_transform`.

        With a sparseness constraint the starting factor is first projected
        onto the constraint.

    solver : {'cd', 'mu'}, default='cd'
        Numerical solver to use:

        - 'cd' is a Coordinate Descent solver, run as HALS (whole components
          at a time, same fixed points as scikit-learn's coordinate descent).
        - 'mu' is a Multiplicative Update solver (every `beta_loss`).

        A factor with a sparseness constraint is updated by Hoyer's projected
        gradient with either solver (see Notes).

    beta_loss : float or {'frobenius', 'kullback-leibler', \
            'itakura-saito'}, default='frobenius'
        Beta divergence to be minimised, measuring the distance between X and
        the dot product WH. For beta_loss <= 0 (or 'itakura-saito'), the input
        matrix X cannot contain zeros. Used only in the 'mu' solver; the
        sparseness constraints need 'frobenius'.

    tol : float, default=1e-4
        Tolerance of the stopping condition.

    max_iter : int, default=200
        Maximum number of iterations before timing out.

    {random_state}
        Used by the 'random' and 'nndsvdar' initialisations, the randomized
        SVD of the NNDSVD ones, and ``shuffle``.

    alpha_W : float, default=0.0
        Constant that multiplies the regularisation terms of `W`. Set it to
        zero (default) to have no regularisation on `W`.

    alpha_H : float or "same", default="same"
        Constant that multiplies the regularisation terms of `H`. If "same"
        (default), it takes the same value as `alpha_W`.

    l1_ratio : float, default=0.0
        The regularisation mixing parameter, with 0 <= l1_ratio <= 1: 0 is an
        elementwise L2 penalty, 1 an elementwise L1 penalty.

    verbose : int, default=0
        Whether to be verbose.

    shuffle : bool, default=False
        If true, randomise the order of the components in the CD solver.

    sparseness_components : float in [0, 1] or None, default=None
        Hoyer sparseness of every atom (row of `components_`). `None` leaves
        the atoms unconstrained. It is an exact target, not an upper bound: a
        value below the sparseness the atoms reach unconstrained, which
        `hoyer_sparsity(SparseNMF(n_components).fit(X).components_)`
        measures, makes the atoms denser.

    sparseness_codes : float in [0, 1] or None, default=None
        Hoyer sparseness of every sample's code vector (row of the output of
        `transform` and `fit_transform`). `None` leaves the codes
        unconstrained.

    transform_max_iter : int or None, default=None
        Maximum number of iterations of `transform` (scikit-learn's
        :class:`~sklearn.decomposition.MiniBatchNMF` parameter). If `None`, it
        defaults to `max_iter`, or to 200 when `batch_size` is set (`max_iter`
        then counts passes over the data). In online fitting it also caps the
        codes' solver of every mini-batch.

    batch_size : int or None, default=None
        `None` fits on the whole data at once (scikit-learn's
        :class:`~sklearn.decomposition.NMF`). An int streams the rows in
        mini-batches of that size (online NMF, as
        :class:`~sklearn.decomposition.MiniBatchNMF`): memory does not grow
        with the number of samples, a ``numpy.memmap`` is read one mini-batch
        at a time, `max_iter` counts passes over the data and `transform`
        also works in mini-batches (same codes). Frobenius loss only. See
        Notes. `partial_fit` splits its input into mini-batches of this size
        (`None`: one mini-batch).

    forget_factor : float in [0, 1], default=0.7
        Online fitting only (`batch_size` or `partial_fit`): the weight left
        to the statistics of the past after one pass over the data of `fit`,
        or after one call of `partial_fit`, spread evenly over its
        mini-batches (scikit-learn's `MiniBatchNMF` parameter). 1 keeps all
        the past; values below 1 forget the codes computed with early atoms.
        The statistics average over about ``n_samples / ln(1 / forget_factor)``
        recent samples: for one or two passes over a large dataset a much
        smaller value (such as ``1e-6``) forgets the first, poor atoms sooner.

    {device}

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Factorisation matrix, sometimes called 'dictionary': one atom per row.

    n_components_ : int
        The number of components.

    reconstruction_err_ : float
        Frobenius norm of the matrix difference, or beta-divergence, between
        the training data ``X`` and the reconstruction ``WH`` of the fit.

    n_iter_ : int
        Actual number of iterations (with `batch_size`: passes over the data
        started).

    n_steps_ : int
        Number of mini-batches processed (online fitting only: `batch_size`
        set or `partial_fit`; it counts over all `partial_fit` calls).

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    sklearn.decomposition.NMF : The same factorisation without sparseness
        constraints, in NumPy/Cython.
    sklearn.decomposition.MiniBatchNMF : Online NMF for large data.
    MultilayerNMF : Stacked SparseNMF layers with joint fine-tuning.
    skpart.metrics.hoyer_sparsity : The sparseness measure constrained here.

    Notes
    -----
    Solvers. Without constraints, 'cd' runs HALS (Cichocki and Phan, 2009):
    each block update computes ``X H^T`` and ``H H^T`` once and sweeps the
    components a few times over the small Gram matrix (accelerated HALS,
    Gillis and Glineur, 2012), in the dtype of the input (float32 data of at
    most 65 536 entries is fitted and encoded in float64, the results
    returned as float32: at that size float32 saves nothing and costs
    agreement with the float64 fit). Each sweep is
    scikit-learn's coordinate descent done a component at a time, so the fixed
    points are the same; the extra sweeps only reach a given error in fewer
    passes over the data. 'cd' stops when scikit-learn's test holds (the
    projected-gradient violation below `tol` times its first value) and the
    error has settled as for 'mu' (it fell by less than `tol` times the
    initial error over the last 10 iterations): the extrapolation shrinks the
    violation long before the error settles. Both factors are also
    extrapolated along their last change, with restarts when the objective
    increases (Ang and Gillis, 2019), so 'cd'
    reaches scikit-learn's fixed points by other iterates. Changes of the
    objective within its rounding noise (four float32 ulps of
    ``0.5 ||X||^2``) decide no restart, so the same
    data as a dense array, a CSR or a CSC matrix gives the same iterates. 'mu' is
    scikit-learn's multiplicative update for every beta loss, with the
    products formed one row block at a time. Convergence is tested every 10
    iterations (scikit-learn tests 'cd' every iteration), so `n_iter_` is a
    multiple of 10 unless `max_iter` is reached.

    Sparseness constraints. The constrained factor is updated by Hoyer's
    projected gradient with step-size adaptation (a step that lowers the
    objective is kept and the step grows by 1.2, otherwise it is halved),
    the other factor by the chosen solver, as in Hoyer's ``nmfsc``. The
    projection is the exact Euclidean projection onto the cone of vectors
    with the target sparseness; the objective of a trial step comes from the
    Gram matrices, without touching the data; the codes have one step size
    per sample; the atoms' gradient is scaled atom by atom by its curvature
    (a step of 1 is the HALS target of every atom, projected). With 'cd' the
    constrained factor takes a few steps per iteration inside the
    extrapolated HALS loop. The projected gradient is used because it never
    increases the objective; a HALS sweep followed by a projection is not a
    descent step onto the constraint set. The constraints are hard: every
    row has the target sparseness to rounding after `fit`, `fit_transform`
    and `transform`.

    Codes. `transform` solves for the codes with the atoms fixed, one sample
    at a time in effect: each sample has its own stopping test, so
    ``transform(X)[:7]`` equals ``transform(X[:7])``. `fit_transform` returns
    the codes of that same solve from the same start (zeros for 'cd', per
    sample ``sqrt(mean(x_i) / n_components)`` for 'mu', where scikit-learn
    uses the batch mean), so ``fit_transform(X) == fit(X).transform(X)``;
    `reconstruction_err_` is the error of the fit itself, as in
    scikit-learn. `fit` does not run that extra solve.

    Online fitting. With `batch_size` set, `fit` streams the rows in
    mini-batches, in order, for at most `max_iter` passes, and `partial_fit`
    streams its input once. Each mini-batch step (Mairal et al., 2010, in
    the form of scikit-learn's `MiniBatchNMF`) solves the batch's codes with
    the atoms fixed, exactly as `transform` does (same solver and sparseness
    constraint); folds ``W^T W`` and ``W^T X`` into running per-sample means
    ``A`` and ``B``, the past weighted by `forget_factor` per pass; and
    updates the atoms, warm-started, on ``min_H 0.5 tr(H^T A H) - tr(H^T B)``
    plus the penalties of `alpha_H` per sample: HALS sweeps ('cd'), one
    multiplicative update ('mu'), or Hoyer's projected gradient with the
    same cone projection as the full-batch fit when `sparseness_components`
    is set, so every atom keeps its sparseness exactly. A component whose
    codes have vanished from the statistics (``A[t, t]`` at most machine
    epsilon times the largest) keeps its atom: dividing by that diagonal
    would blow the atom up. Without penalties and `sparseness_codes` the
    scale of each component is free (``W H`` does not change when an atom
    is divided by ``d`` and its codes multiplied by it), and every step
    rescales each atom by a power of two so that its norm matches the root
    mean square of its codes, as the full-batch 'cd' balances its factors:
    the atoms stay bounded. Memory holds one mini-batch and the ``k x k``
    and ``k x n_features`` statistics, whatever the number of samples; a
    ``numpy.memmap`` is validated one mini-batch at a time, all of it before
    the first step, and its pages are released after use. The fit starts
    from `init` computed on the first mini-batch. It stops, as `MiniBatchNMF`
    does, when
    a step changes the atoms by at most `tol` (relative Frobenius norm) or
    when the smoothed batch cost has not improved for 10 steps; `tol=0`
    runs `max_iter` passes. `reconstruction_err_` is then estimated from the
    last `n_samples` samples streamed, each with the codes and atoms of its
    own step. `partial_fit` initialises on its first call (from `init` on
    that data), or continues the statistics of the last online fit (from
    `components_` after a full-batch fit). Only the Frobenius loss is
    streamed.

    Scale. Data whose largest entry is outside ``[4**-5, 4**10]`` (about
    ``[1e-3, 1e6]``; in online fitting, that of the first mini-batch) is
    divided by the power of 4 nearest to that entry before fitting, with
    the penalties the solvers get scaled so that they keep the meaning of
    the objective above; the factors and codes are multiplied back by its
    square root (a power of 2, so exactly), `reconstruction_err_` by the
    matching power. The solvers have absolute floors (machine epsilon,
    scikit-learn's ``EPSILON`` and NNDSVD threshold) and square the data,
    which made fits of float32 data near 1e-20 or 1e20 fail, overflow or
    return zeros: a fit of such data is now the fit of the data brought
    near 1. Data inside the range is fitted as it is, with scikit-learn's
    numbers.

    Failures. A call of `fit`, `fit_transform` or `partial_fit` that raises
    (a ``KeyboardInterrupt`` too) leaves the estimator as it was before the
    call, and fitted arrays are never changed by a later call. A transform
    whose codes would not be finite (an overflow of float32) raises a
    ``ValueError`` instead.

    Dask arrays. `fit`, `fit_transform` and `partial_fit` take a 2-D
    ``dask.array.Array`` chunked along its rows and fit it where its blocks
    live: each block solves its codes with the broadcast atoms and returns
    ``W^T W`` and ``W^T X``, summed for the atoms' update, so the fit is the
    in-memory one to rounding (same init for 'nndsvd' and 'nndsvda'). The
    codes of `transform` and the reconstructions of `inverse_transform` of a
    dask array are lazy dask arrays. See the user guide's "Fitting on a
    cluster".

    References
    ----------
    .. [1] P. O. Hoyer, "Non-negative matrix factorization with sparseness
       constraints", Journal of Machine Learning Research 5:1457-1469, 2004.

    .. [2] A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale
       nonnegative matrix and tensor factorizations", IEICE Transactions on
       Fundamentals 92(3):708-721, 2009.

    .. [3] N. Gillis and F. Glineur, "Accelerated multiplicative updates and
       hierarchical ALS algorithms for nonnegative matrix factorization",
       Neural Computation 24(4):1085-1105, 2012.

    .. [4] C. Fevotte and J. Idier, "Algorithms for nonnegative matrix
       factorization with the beta-divergence", Neural Computation 23(9),
       2011.

    .. [5] J. Mairal, F. Bach, J. Ponce and G. Sapiro, "Online learning for
       matrix factorization and sparse coding", Journal of Machine Learning
       Research 11:19-60, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from skpart import SparseNMF
    >>> X = np.random.RandomState(0).rand(20, 10)
    >>> model = SparseNMF(n_components=4, sparseness_components=0.5,
    ...                   random_state=0, max_iter=50)
    >>> W = model.fit_transform(X)
    >>> W.shape, model.components_.shape
    ((20, 4), (4, 10))

    Streamed in mini-batches of 8 rows (an array, or a ``numpy.memmap``):

    >>> online = SparseNMF(n_components=4, batch_size=8, max_iter=5,
    ...                    random_state=0).fit(X)
    >>> online.components_.shape, online.n_steps_
    ((4, 10), 15)
    """

    #: scikit-learn's NMF names its output features nmf0, nmf1, ...
    _feature_names_prefix = "nmf"

    _parameter_constraints: dict = {
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            None,
            StrOptions({"auto"}),
        ],
        "init": [
            StrOptions({"random", "nndsvd", "nndsvda", "nndsvdar", "custom"}),
            None,
        ],
        "solver": [StrOptions({"mu", "cd"})],
        "beta_loss": [
            StrOptions({"frobenius", "kullback-leibler", "itakura-saito"}),
            Real,
        ],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "alpha_W": [Interval(Real, 0, None, closed="left")],
        "alpha_H": [Interval(Real, 0, None, closed="left"), StrOptions({"same"})],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "verbose": ["verbose"],
        "shuffle": ["boolean"],
        "sparseness_components": [Interval(Real, 0, 1, closed="both"), None],
        "sparseness_codes": [Interval(Real, 0, 1, closed="both"), None],
        "transform_max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "forget_factor": [Interval(Real, 0, 1, closed="both")],
        # DEVICE_CONSTRAINT's StrOptions overlaps `str`, which makes
        # check_param_validation fail; the name is checked in fit instead.
        "device": [str, torch.device],
    }

    def __init__(
        self,
        n_components="auto",
        *,
        init=None,
        solver="cd",
        beta_loss="frobenius",
        tol=1e-4,
        max_iter=200,
        random_state=None,
        alpha_W=0.0,
        alpha_H="same",
        l1_ratio=0.0,
        verbose=0,
        shuffle=False,
        sparseness_components=None,
        sparseness_codes=None,
        transform_max_iter=None,
        batch_size=None,
        forget_factor=0.7,
        device="cpu",
    ):
        self.n_components = n_components
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.verbose = verbose
        self.shuffle = shuffle
        self.sparseness_components = sparseness_components
        self.sparseness_codes = sparseness_codes
        self.transform_max_iter = transform_max_iter
        self.batch_size = batch_size
        self.forget_factor = forget_factor
        self.device = device

    # -- validation ----------------------------------------------------------
    def _check_params(self, X):
        self._n_components = self.n_components
        if self._n_components is None:
            self._n_components = X.shape[1]
        beta = self.beta_loss
        self._beta_loss = float(_BETA_LOSS.get(beta, beta))
        if self.solver != "mu" and self._beta_loss != 2:
            raise ValueError(
                f"Invalid beta_loss parameter: solver {self.solver!r} does not handle "
                f"beta_loss = {self.beta_loss!r}"
            )
        constrained = (
            self.sparseness_components is not None or self.sparseness_codes is not None
        )
        if constrained and self._beta_loss != 2:
            raise ValueError(
                "Invalid beta_loss parameter: the sparseness constraints "
                "(sparseness_components, sparseness_codes) need "
                f"beta_loss='frobenius', got beta_loss = {self.beta_loss!r}"
            )
        if self.solver == "mu" and self.init == "nndsvd":
            warn(
                (
                    "The multiplicative update ('mu') solver cannot update "
                    "zeros present in the initialization, and so leads to "
                    "poorer results when used jointly with init='nndsvd'. "
                    "You may try init='nndsvda' or init='nndsvdar' instead."
                ),
                UserWarning,
            )
        data = X.data if hasattr(X, "data") and not isinstance(X, np.ndarray) else X
        if self._beta_loss <= 0 and (
            min(X.shape) > 0
            and (data.min() == 0 or (hasattr(X, "nnz") and X.nnz < np.prod(X.shape)))
        ):
            raise ValueError(
                "When beta_loss <= 0 and X contains zeros, "
                "the solver may diverge. Please add small values "
                "to X, or use a positive beta_loss."
            )

    def _regularization(self, X):
        """scikit-learn's scaled penalties ``(l1_W, l1_H, l2_W, l2_H)``."""
        return self._penalties(*X.shape)

    def _penalties(self, n_samples, n_features):
        """Scaled penalties for data of shape ``(n_samples, n_features)``, as
        the solvers see them.

        The solvers fit ``X / c`` with factors ``W / sqrt(c)`` and
        ``H / sqrt(c)`` (``c = _data_scale``, see ``NMFBase``). The objective
        of the docstring at ``(W, H)`` is ``c ** beta`` times the solvers'
        objective when their L1 penalties are multiplied by
        ``c ** (0.5 - beta)`` and their L2 penalties by ``c ** (1 - beta)``:
        the penalties keep their meaning at any data scale.
        """
        alpha_H = self.alpha_W if self.alpha_H == "same" else self.alpha_H
        penalties = (
            n_features * self.alpha_W * self.l1_ratio,
            n_samples * alpha_H * self.l1_ratio,
            n_features * self.alpha_W * (1.0 - self.l1_ratio),
            n_samples * alpha_H * (1.0 - self.l1_ratio),
        )
        c = getattr(self, "_data_scale", 1.0)
        if c == 1:
            return penalties
        l1, l2 = c ** (0.5 - self._beta_loss), c ** (1.0 - self._beta_loss)
        l1_W, l1_H, l2_W, l2_H = penalties
        return l1_W * l1, l1_H * l1, l2_W * l2, l2_H * l2

    def _initial_factors(self, shape, dtype, Xt, W, H):
        """Starting factors ``(W, H)`` as tensors: the custom ones checked,
        the others computed by ``init`` from ``Xt`` (a tensor, or the fit's
        ``DataOperator``).

        ``shape`` and ``dtype`` describe the data: all of it (which custom
        factors must match), or for computed factors the rows of ``Xt``
        (in online fitting, the first mini-batch). Custom factors are divided
        by the square root of ``_data_scale``, as ``Xt`` is by ``_data_scale``.
        """
        n_samples, n_features = shape
        name = type(self).__name__
        if self.init == "custom":
            H = _check_init(H, (self._n_components, n_features), f"{name} (input H)")
            W = _check_init(W, (n_samples, self._n_components), f"{name} (input W)")
            if self._n_components == "auto":
                self._n_components = H.shape[0]
            if H.dtype != dtype or W.dtype != dtype:
                raise TypeError(
                    "H and W should have the same dtype as X. Got "
                    f"H.dtype = {H.dtype} and W.dtype = {W.dtype}."
                )
            return self._solver_factor(W, Xt), self._solver_factor(H, Xt)
        if W is not None or H is not None:
            warn(
                (
                    "When init!='custom', provided W or H are ignored. Set "
                    " init='custom' to use them as initialization."
                ),
                RuntimeWarning,
            )
        if self._n_components == "auto":
            self._n_components = n_features
        error = (
            f"init = '{self.init}' can only be used when "
            "n_components <= min(n_samples, n_features)"
        )
        init = resolve_init(
            self.init, self._n_components, n_samples, n_features, error=error
        )
        return initialize_nmf(
            Xt,
            self._n_components,
            init,
            generator=self._generator,
            normals=sklearn_normals(self.random_state),
            svd_normals=sklearn_normals(self.random_state),
        )

    # -- fitting -------------------------------------------------------------
    def _fit_full_batch(self, X, W, H):
        """Validate, initialise and fit on all of ``X`` at once; returns
        ``X`` validated and its tensor as the solvers see it (divided by
        ``_data_scale``)."""
        X = self._validate_X(X, reset=True)
        self._check_params(X)
        device, _ = self._fit_setup()
        self._data_scale = data_scale(X)
        Xt = self._data_tensor(X, device, reset=True)
        l1_W, l1_H, l2_W, l2_H = self._regularization(X)
        # The starting pair goes in a list that fit_nmf empties, so that the
        # starting codes are freed once the fit has moved past them.
        # The init's operator goes on to a Frobenius fit, which takes the
        # same products with X^T: a sparse X's transpose is built once. The
        # other losses use only X^T's pattern, with new values: the init's
        # transpose goes with its operator.
        data = DataOperator(Xt)
        start = list(self._initial_factors(X.shape, X.dtype, data, W, H))
        if self._beta_loss != 2:
            data = Xt
        W, H, n_iter, converged = fit_nmf(
            data,
            start=start,
            solver=self.solver,
            beta_loss=self._beta_loss,
            max_iter=self.max_iter,
            tol=self.tol,
            l1_reg_W=l1_W,
            l1_reg_H=l1_H,
            l2_reg_W=l2_W,
            l2_reg_H=l2_H,
            sparseness_W=self.sparseness_codes,
            sparseness_H=self.sparseness_components,
            shuffle=self.shuffle,
            generator=self._generator,
            verbose=self.verbose,
        )
        if not converged:
            self._warn_max_iter(n_iter, self.max_iter)
        error = float(beta_divergence(Xt, W, H, self._beta_loss, square_root=True))
        if self._data_scale != 1:  # sqrt(2 D_beta) scales as c ** (beta / 2)
            error *= self._data_scale ** (self._beta_loss / 2)
        self.reconstruction_err_ = error
        self.components_ = self._fitted_factor(H, X.dtype)
        self.n_components_ = self.components_.shape[0]
        self.n_iter_ = n_iter
        self._online_state = None
        self.__dict__.pop("n_steps_", None)  # online fitting only
        self._check_finite_fit()
        return X, Xt

    # -- online fitting: the hooks of NMFBase._fit_online --------------------
    def _check_online_params(self, chunk):
        """Resolve the parameters on the first mini-batch; only the Frobenius
        loss is streamed."""
        self._check_params(chunk)
        if self._beta_loss != 2:
            raise ValueError(
                f"{type(self).__name__} streams only the Frobenius loss: "
                "batch_size and partial_fit need beta_loss='frobenius', got "
                f"beta_loss = {self.beta_loss!r}."
            )

    def _start_online_states(self, chunk, first_batch, n_samples, *, W=None, H=None):
        """One online state, around the atoms of ``init`` on the first
        mini-batch (custom ones: ``H``, checked against the whole data)."""
        if self.init == "custom":
            shape = (n_samples, chunk.shape[1])
        else:
            shape = chunk.shape
        _, atoms = self._initial_factors(shape, chunk.dtype, first_batch, W, H)
        return [OnlineNMF.start(atoms, self.sparseness_components)]

    def _online_step(self, states, batch, *, rho):
        """:func:`~skpart._core._online.minibatch_step` on the one state, the
        components in a random order with ``shuffle`` and 'cd'."""
        (state,) = states
        k, n_features = state.H.shape
        l1_W, l1_H, l2_W, l2_H = self._penalties(1, n_features)
        order = None
        if self.shuffle and self.solver == "cd":
            order = randperm(k, self._generator, device="cpu").tolist()
        _, fit, objective, change = minibatch_step(
            state,
            batch,
            rho=rho,
            solver=self.solver,
            code_max_iter=code_solver_max_iter(self),
            tol=self.tol,
            l1_reg_W=l1_W,
            l2_reg_W=l2_W,
            l1_reg_H=l1_H,
            l2_reg_H=l2_H,
            sparseness_W=self.sparseness_codes,
            sparseness_H=self.sparseness_components,
            order=order,
        )
        return objective, change, fit

    def _fitted_online_model(self):
        """The atoms ``components_`` of the one state and its statistics."""
        atoms = self.components_ / self._factor_scale
        return [atoms], [getattr(self, "_online_state", None)]

    def _set_online_model(self, states, *, incremental):
        (state,) = states
        self.components_ = self._fitted_factor(state.H)
        self.n_components_ = state.H.shape[0]
        self._online_state = save_online_state(state)

    def _restore_online_states(self, device):
        if getattr(self, "_generator", None) is None:
            # Unpickled: the generator that shuffle draws from is rebuilt.
            self._fit_setup()
        return super()._restore_online_states(device)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, **params):
        """Update the model with the data in `X`, streamed as mini-batches.

        Online NMF (see Notes): the first call initialises the atoms from
        `X` (with `init`) and later calls continue from the statistics
        accumulated so far, so that a dataset too large for memory can be fed
        chunk by chunk. `X` is split into mini-batches of `batch_size` rows
        (one mini-batch if `batch_size` is None) and streamed once. Frobenius
        loss only.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A chunk of the training data.

        y : Ignored
            Not used, present for API consistency by convention.

        **params : kwargs
            `W` and `H` when `init='custom'`, on the first call: `H` gives the
            starting atoms, `W` (shape ``(n_samples, n_components)``) is only
            checked (the codes of a mini-batch are always solved for with the
            atoms fixed).

        Returns
        -------
        self : object
            Returns the instance itself.
        """
        with self._transaction():
            if _dask.is_dask_array(X):
                _dask.partial_fit_sparse_nmf(self, X, params.get("W"), params.get("H"))
                return self
            self._fit_online(X, incremental=True, W=params.get("W"), H=params.get("H"))
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, **params):
        """Learn an NMF model for the data X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training vector, where `n_samples` is the number of samples and
            `n_features` is the number of features.

        y : Ignored
            Not used, present for API consistency by convention.

        **params : kwargs
            `W` and `H`, the starting factors when `init='custom'` (see
            `fit_transform`).

        Returns
        -------
        self : object
            Returns the instance itself.
        """
        W, H = params.get("W"), params.get("H")
        with self._transaction():
            if _dask.is_dask_array(X):
                _dask.fit_sparse_nmf(self, X, W, H)
            elif self.batch_size is None:
                self._fit_full_batch(X, W, H)
            else:
                self._fit_online(X, incremental=False, W=W, H=H)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None, W=None, H=None):
        """Learn an NMF model for the data X and return the transformed data.

        The returned codes are those of `transform` on the fitted model (same
        solver, same start), so that ``fit_transform(X)`` equals
        ``fit(X).transform(X)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training vector, where `n_samples` is the number of samples and
            `n_features` is the number of features.

        y : Ignored
            Not used, present for API consistency by convention.

        W : array-like of shape (n_samples, n_components), default=None
            If `init='custom'`, it is used as initial guess for the solution.

        H : array-like of shape (n_components, n_features), default=None
            If `init='custom'`, it is used as initial guess for the solution.

        Returns
        -------
        W : ndarray of shape (n_samples, n_components)
            Transformed data.
        """
        if _dask.is_dask_array(X):
            with self._transaction():
                _dask.fit_sparse_nmf(self, X, W, H)
            return _dask.transform(self, X)
        with self._transaction():
            if self.batch_size is None:
                X, Xt = self._fit_full_batch(X, W, H)
                return self._fitted_codes(self._codes(X, Xt), X.dtype)
            self._fit_online(X, incremental=False, W=W, H=H)
            return np.concatenate(self._encode_in_batches(self._codes, X))

    def _codes(self, X, Xt):
        """The solvers' codes of validated ``X`` (tensor ``Xt``, divided by
        ``_data_scale``) with the atoms fixed.

        The atoms take the data's dtype, so the codes follow the input's
        dtype whatever the dtype of the fit.
        """
        H = self._solver_factor(self.components_, Xt)
        l1_W, _, l2_W, _ = self._regularization(X)
        max_iter = code_solver_max_iter(self)
        W, _ = solve_codes(
            Xt,
            H,
            solver=self.solver,
            beta_loss=self._beta_loss,
            max_iter=max_iter,
            tol=self.tol,
            l1_reg_W=l1_W,
            l2_reg_W=l2_W,
            sparseness_W=self.sparseness_codes,
        )
        return W

    def transform(self, X):
        """Transform the data X according to the fitted model.

        Solves for the codes with the atoms fixed (non-negative least squares
        for the Frobenius loss, projected onto the sparseness constraint when
        `sparseness_codes` is set), every sample independently of the others.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        W : ndarray of shape (n_samples, n_components)
            Transformed data.
        """
        if _dask.is_dask_array(X):
            return _dask.transform(self, X)
        return np.concatenate(self._encode_in_batches(self._codes, X))
