"""Tests of NonnegativeSparseAutoencoder and its torch core."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from skpart import NonnegativeSparseAutoencoder
from skpart._core._autoencoder import (
    History,
    Objective,
    SparseAutoencoder,
    initialize_autoencoder,
    make_optimizer,
    reconstruction_mse,
    train,
)
from skpart._core._device import make_generator
from skpart._core._losses import (
    asymmetric_decay,
    epsilon_l1_sparsity,
    kl_sparsity,
    l2_sparsity,
    log_sparsity,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = {"n_components": 8, "max_iter": 5, "batch_size": 32, "random_state": 0}


@pytest.fixture(scope="module")
def X_digits():
    """The first 300 of sklearn's digits in [0, 1] (float64, 64 features)."""
    from sklearn.datasets import load_digits

    return load_digits().data[:300] / 16.0


# -- penalties: value and gradient against hand-computed cases ----------------------

T = [0.25, 0.5]  # mean activations of two hidden units
P = 0.5
EPS = 0.01


def _value_and_grad(fn, t):
    t = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    value = fn(t)
    (grad,) = torch.autograd.grad(value, t)
    return value.item(), grad.numpy()


@pytest.mark.parametrize(
    "fn, value, grad",
    [
        # KL: p log(p/t) + (1-p) log((1-p)/(1-t)); d/dt = -p/t + (1-p)/(1-t)
        (
            lambda t: kl_sparsity(t, P),
            0.5 * math.log(2) + 0.5 * math.log(2 / 3) + 0.0,
            [-2 + 2 / 3, 0.0],
        ),
        # L2: (p - t)^2; d/dt = -2 (p - t)
        (lambda t: l2_sparsity(t, P), 0.0625, [-0.5, 0.0]),
        # epsilon-L1: sqrt((p - t)^2 + eps); d/dt = -(p - t) / sqrt(...)
        (
            lambda t: epsilon_l1_sparsity(t, P, EPS),
            math.sqrt(0.0625 + EPS) + math.sqrt(EPS),
            [-0.25 / math.sqrt(0.0625 + EPS), 0.0],
        ),
        # log: log(1 + (p - t)^2); d/dt = -2 (p - t) / (1 + (p - t)^2)
        (lambda t: log_sparsity(t, P), math.log(1.0625), [-0.5 / 1.0625, 0.0]),
    ],
    ids=["kl", "l2", "epsilon_l1", "log"],
)
def test_sparsity_penalty_value_and_gradient(fn, value, grad):
    v, g = _value_and_grad(fn, T)
    assert v == pytest.approx(value, rel=1e-12)
    assert_allclose(g, grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "norm, value, grad",
    [
        # w = [-2, 3], ratio 0.5: f = [4, 0.5 * 9]; 0.5 * sum = 4.25
        ("l2", 4.25, [-2.0, 1.5]),
        # f = [2, 0.5 * 3]; 0.5 * sum = 1.75; grad 0.5 * [-1, 0.5]
        ("l1", 1.75, [-0.5, 0.25]),
        # g(w) = sqrt(w^2 + eps) - sqrt(eps) + w^2
        (
            "l1_l2",
            0.5
            * ((math.sqrt(4 + EPS) - 0.1 + 4) + 0.5 * (math.sqrt(9 + EPS) - 0.1 + 9)),
            [
                0.5 * (-2 / math.sqrt(4 + EPS) - 4),
                0.25 * (3 / math.sqrt(9 + EPS) + 6),
            ],
        ),
    ],
)
def test_asymmetric_decay_value_and_gradient(norm, value, grad):
    w = torch.tensor([-2.0, 3.0], dtype=torch.float64, requires_grad=True)
    v = asymmetric_decay(w, 0.5, norm, EPS)
    (g,) = torch.autograd.grad(v, w)
    assert v.item() == pytest.approx(value, rel=1e-12)
    assert_allclose(g.numpy(), grad, rtol=1e-12)


def test_kl_is_finite_when_units_saturate():
    t = torch.tensor([0.0, 1.0, 0.3], dtype=torch.float32, requires_grad=True)
    v = kl_sparsity(t, 1e-4)
    (g,) = torch.autograd.grad(v, t)
    assert torch.isfinite(v) and torch.isfinite(g).all()


def _module(X, k=6, seed=0, init="glorot_uniform", activation="sigmoid"):
    module = SparseAutoencoder(
        X.shape[1], k, activation, dtype=X.dtype, device=X.device
    )
    initialize_autoencoder(module, X, init, generator=make_generator(seed))
    return module


def test_asymmetric_decay_with_ratio_one_is_plain_weight_decay(X_digits):
    """Its gradient adds exactly ``decay_weight * W`` to the decoder's, nothing
    elsewhere: the gradient of (decay_weight / 2) ||W_d||^2."""
    X = torch.from_numpy(X_digits[:50])
    module = _module(X)
    lam = 0.3
    plain = Objective(nonnegativity=None)
    decay = Objective(
        nonnegativity="asymmetric_decay", decay_weight=lam, decay_ratio=1.0
    )
    grads = []
    for obj in (plain, decay):
        module.zero_grad()
        obj(module, X)[0].backward()
        grads.append({n: p.grad.clone() for n, p in module.named_parameters()})
    W = module.decoder_weight.detach()
    assert W.abs().sum() > 0
    for name in grads[0]:
        expected = grads[0][name] + (lam * W if name == "decoder_weight" else 0.0)
        assert_allclose(grads[1][name].numpy(), expected.numpy(), rtol=1e-12)


# -- training loop -------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("nonnegative_encoder", [False, True])
def test_projection_keeps_constrained_weights_nonnegative_after_every_step(
    X_digits, solver, nonnegative_encoder
):
    """Every optimiser step starts from (and the last one ends at) weights >= 0:
    the projection follows each step. (L-BFGS's line search may evaluate the
    objective at unprojected trial points inside a step.)"""
    X = torch.from_numpy(X_digits)
    module = _module(X)
    obj = Objective(nonnegative_encoder=nonnegative_encoder)
    obj.project(module)
    opt = make_optimizer(module, solver, 0.05)
    minima = []
    step = opt.step

    def recording_step(*args, **kwargs):
        with torch.no_grad():
            minima.append(min(float(w.min()) for w in obj.constrained(module)))
        return step(*args, **kwargs)

    opt.step = recording_step
    train(
        module, opt, obj, X, history=History(), max_iter=3, batch_size=16,
        solver=solver, generator=make_generator(0),
    )  # fmt: skip
    assert len(minima) == (3 if solver == "lbfgs" else 3 * 19)
    assert min(minima) >= 0.0
    assert all(float(w.min()) >= 0 for w in obj.constrained(module))
    # The constraint is active: the unconstrained encoder has negative weights.
    assert nonnegative_encoder or float(module.encoder_weight.min()) < 0


@pytest.mark.parametrize(
    "weight_init",
    ["glorot_uniform", "he_normal", "orthogonal", "normal", "nmf", "nmf_identity"],
)
@pytest.mark.parametrize("nonnegativity", ["projection", "asymmetric_decay", None])
def test_components_nonnegative_with_projection_over_init_grid(
    X_digits, weight_init, nonnegativity
):
    ae = NonnegativeSparseAutoencoder(
        weight_init=weight_init, nonnegativity=nonnegativity, **SMALL
    ).fit(X_digits)
    assert np.isfinite(ae.components_).all()
    if nonnegativity == "projection":
        assert ae.components_.min() >= 0
        assert ae.components_.max() > 0


def test_nmf_identity_factors_the_identity(X_digits):
    """With k = n_features the linear parts of encoder and decoder multiply to
    the identity (the exact factors: HALS from the NNDSVD of the identity
    merged a few features, 0.28 to 0.31 away in relative norm); with fewer
    units, to a non-negative approximation of it."""
    X = torch.from_numpy(X_digits)
    n = X.shape[1]
    eye = torch.eye(n, dtype=X.dtype)
    for k, bound in ((n, 1e-12), (n // 2, 0.72)):
        module = _module(X, k=k, init="nmf_identity")
        A = module.encoder_weight.detach().T / 4.0
        B = module.decoder_weight.detach() / 4.0  # sigmoid output, linearised
        assert A.min() >= 0 and B.min() >= 0
        # rank k: at best sqrt(1 - k / n) = 0.707 of its norm is missed (met)
        assert torch.linalg.norm(A @ B - eye) / torch.linalg.norm(eye) < bound


def test_loss_curve_decreases_on_digits(X_digits):
    ae = NonnegativeSparseAutoencoder(
        n_components=16, max_iter=40, batch_size=32, random_state=0
    ).fit(X_digits)
    curve = np.asarray(ae.loss_curve_)
    assert len(curve) == ae.n_iter_ == 40
    assert curve[-1] < 0.75 * curve[0]
    assert np.all(np.diff(curve) < 1e-4)  # every epoch improves (up to noise)


def test_lbfgs_loss_curve_decreases(X_digits):
    ae = NonnegativeSparseAutoencoder(
        n_components=8, solver="lbfgs", max_iter=15, random_state=0
    ).fit(X_digits)
    # Projected L-BFGS restarts whenever the projection clips (slow but
    # monotone).
    assert ae.loss_curve_[-1] < ae.loss_curve_[0]
    assert np.all(np.diff(ae.loss_curve_) <= 1e-12)


def test_determinism(X_digits):
    a = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits)
    b = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits)
    c = NonnegativeSparseAutoencoder(**{**SMALL, "random_state": 1}).fit(X_digits)
    for attr in ("components_", "encoder_components_", "encoder_intercept_"):
        assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert a.loss_curve_ == b.loss_curve_
    assert not np.array_equal(a.components_, c.components_)


def test_transform_is_batch_independent(X_digits):
    ae = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits)
    full = ae.transform(X_digits)
    parts = np.vstack([ae.transform(X_digits[i : i + 7]) for i in range(0, 300, 7)])
    single = ae.transform(X_digits[5:6])
    assert full.std() > 0
    assert_allclose(parts, full, rtol=1e-12)
    assert_allclose(single, full[5:6], rtol=1e-12)
    assert_allclose(ae.fit_transform(X_digits), ae.transform(X_digits), rtol=1e-12)


def test_partial_fit_equals_epochs_of_fit(X_digits):
    one = NonnegativeSparseAutoencoder(**{**SMALL, "max_iter": 1}).fit(X_digits)
    two = NonnegativeSparseAutoencoder(**{**SMALL, "max_iter": 2}).fit(X_digits)
    inc = NonnegativeSparseAutoencoder(**SMALL).partial_fit(X_digits)
    assert_array_equal(inc.components_, one.components_)
    assert_array_equal(inc.encoder_components_, one.encoder_components_)
    assert inc.n_iter_ == 1
    inc.partial_fit(X_digits)  # optimiser state and generator carry over
    assert_array_equal(inc.components_, two.components_)
    assert inc.n_iter_ == 2 and inc.loss_curve_ == two.loss_curve_


def test_pickle_after_training_and_device_independence(X_digits):
    ae = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits)
    blob = pickle.dumps(ae)
    loaded = pickle.loads(blob)
    assert not hasattr(loaded, "_module")
    assert isinstance(loaded.components_, np.ndarray)
    assert_array_equal(loaded.transform(X_digits), ae.transform(X_digits))
    # A model trained on a GPU keeps device="cuda"; on a CPU-only machine it
    # must still load and run on the CPU.
    ae.__dict__["device"] = "cuda"
    gpu_like = pickle.loads(pickle.dumps(ae))
    if not torch.cuda.is_available():
        assert_array_equal(gpu_like.transform(X_digits), loaded.transform(X_digits))
    # partial_fit after unpickling continues from the stored weights.
    loaded.partial_fit(X_digits)
    assert loaded.n_iter_ == ae.n_iter_ + 1


def test_clone_and_set_params_retrain_from_scratch(X_digits):
    ae = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits)
    assert not hasattr(clone(ae), "components_")
    ae.set_params(n_components=3).fit(X_digits)
    fresh = NonnegativeSparseAutoencoder(**{**SMALL, "n_components": 3}).fit(X_digits)
    assert ae.components_.shape == (3, 64)
    assert_array_equal(ae.components_, fresh.components_)


def test_warm_start_continues(X_digits):
    ae = NonnegativeSparseAutoencoder(**SMALL, warm_start=True).fit(X_digits)
    first = list(ae.loss_curve_)
    ae.fit(X_digits)
    assert len(ae.loss_curve_) == 2 * len(first)
    assert ae.loss_curve_[len(first)] < first[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_input(X_digits, dtype):
    X = X_digits.astype(dtype)
    ae = NonnegativeSparseAutoencoder(**SMALL).fit(X)
    assert ae.components_.dtype == dtype
    assert ae.transform(X).dtype == dtype
    assert ae.inverse_transform(ae.transform(X)).dtype == dtype


def test_float32_and_float64_agree(X_digits):
    a = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits.astype(np.float32))
    b = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits)
    assert_allclose(a.components_, b.components_, atol=2e-3)


def test_early_stopping_bookkeeping(X_digits):
    ae = NonnegativeSparseAutoencoder(
        **{**SMALL, "max_iter": 8}, early_stopping=True, validation_fraction=0.2
    ).fit(X_digits)
    assert len(ae.validation_scores_) == ae.n_iter_
    assert ae.best_validation_score_ == max(ae.validation_scores_)
    assert ae.best_loss_ is None
    plain = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits)
    assert plain.validation_scores_ is None
    assert plain.best_loss_ == min(plain.loss_curve_)


def test_validation_keeps_the_best_parameters(X_digits):
    X = torch.from_numpy(X_digits)
    X_train, X_val = X[:250], X[250:]
    module = _module(X_train)
    obj = Objective()
    obj.project(module)
    history = train(
        module, make_optimizer(module, "adam", 1.0), obj, X_train,
        history=History(), max_iter=8, batch_size=32, X_val=X_val,
        n_iter_no_change=100, generator=make_generator(0),
    )  # fmt: skip
    scores = history.validation_scores
    # Guard: the last epoch is not the best, so the parameters were restored.
    assert int(np.argmax(scores)) < len(scores) - 1
    assert -reconstruction_mse(module, X_val) == max(scores)


def test_partial_fit_carries_the_best_loss(X_digits):
    ae = NonnegativeSparseAutoencoder(**SMALL).partial_fit(X_digits)
    ae.partial_fit(X_digits).partial_fit(1.0 - X_digits)
    # The inverted digits are harder: the best loss is an earlier call's.
    assert ae.loss_curve_[-1] > min(ae.loss_curve_)
    assert ae.best_loss_ == min(ae.loss_curve_)


def test_stops_after_n_iter_no_change(X_digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ae = NonnegativeSparseAutoencoder(
            **{**SMALL, "max_iter": 50}, tol=10.0, n_iter_no_change=2
        ).fit(X_digits)
    # As in sklearn's MLP: epoch 1 sets the best loss, then more than
    # n_iter_no_change=2 epochs without improvement.
    assert ae.n_iter_ == 4


def test_verbose_prints_one_line_per_epoch(X_digits, capsys):
    NonnegativeSparseAutoencoder(**{**SMALL, "max_iter": 2}, verbose=1).fit(X_digits)
    out = capsys.readouterr().out
    assert out.count("Iteration") == 2
    assert "reconstruction =" in out and "mean activation =" in out
    assert "time =" in out


def test_score_and_inverse_transform(X_digits):
    ae = NonnegativeSparseAutoencoder(**SMALL).fit(X_digits)
    X_hat = ae.inverse_transform(ae.transform(X_digits))
    assert ae.score(X_digits) == pytest.approx(-np.mean((X_digits - X_hat) ** 2))
    assert ae.reconstruction_err_ == pytest.approx(-ae.score(X_digits))


def test_real_valued_input_with_mse(rng):
    X = rng.randn(60, 10)
    ae = NonnegativeSparseAutoencoder(**SMALL, decoder_activation="identity").fit(X)
    assert np.isfinite(ae.transform(X)).all()


def test_pipeline_and_grid_search(X_digits):
    from sklearn.datasets import load_digits

    y = load_digits().target[:300]
    pipe = make_pipeline(NonnegativeSparseAutoencoder(**SMALL), SVC())
    grid = GridSearchCV(
        pipe, {"nonnegativesparseautoencoder__n_components": [4, 8]}, cv=2
    ).fit(X_digits, y)
    assert grid.best_params_["nonnegativesparseautoencoder__n_components"] in (4, 8)


# -- errors and extreme parameters ---------------------------------------------------


def test_bad_input_errors(X_digits):
    ae = NonnegativeSparseAutoencoder(**SMALL)
    with pytest.raises(NotFittedError, match="not fitted"):
        ae.transform(X_digits)
    X_nan = X_digits.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ae.fit(X_nan)
    X_inf = X_digits.copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        ae.fit(X_inf)
    with pytest.raises(ValueError, match="2D array"):
        ae.fit(X_digits[0])
    ae.fit(X_digits)
    with pytest.raises(ValueError, match="64 features"):
        ae.transform(X_digits[:, :10])
    with pytest.raises(ValueError, match="expecting 8 features"):
        ae.inverse_transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sparsity_target"):
        NonnegativeSparseAutoencoder(sparsity_target=1.5).fit(X_digits)
    with pytest.raises(ValueError, match="partial_fit does not support"):
        NonnegativeSparseAutoencoder(early_stopping=True).partial_fit(X_digits)
    with pytest.raises(ValueError, match="validation set"):
        NonnegativeSparseAutoencoder(early_stopping=True).fit(X_digits[:5])


def test_bce_refuses_data_outside_unit_interval(X_digits):
    with pytest.raises(ValueError, match=r"needs data in \[0, 1\]"):
        NonnegativeSparseAutoencoder(loss="bce").fit(X_digits * 2)
    with pytest.raises(ValueError, match="decoder_activation='sigmoid'"):
        NonnegativeSparseAutoencoder(loss="bce", decoder_activation="identity").fit(
            X_digits
        )
    ae = NonnegativeSparseAutoencoder(**SMALL, loss="bce").fit(X_digits)
    assert np.isfinite(ae.loss_curve_).all()


def test_nmf_init_refuses_negative_data(rng):
    with pytest.raises(ValueError, match="Negative values"):
        NonnegativeSparseAutoencoder(weight_init="nmf").fit(rng.randn(20, 5))


@pytest.mark.parametrize("sparsity", ["kl", "l2", "epsilon_l1", "log"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_extreme_parameters_give_no_nan(X_digits, sparsity, solver):
    ae = NonnegativeSparseAutoencoder(
        **SMALL,
        sparsity=sparsity,
        sparsity_target=1e-4,
        sparsity_weight=1e3,
        solver=solver,
    ).fit(X_digits)
    codes = ae.transform(X_digits)
    assert np.isfinite(ae.loss_curve_).all()
    for arr in (ae.components_, ae.encoder_components_, codes):
        assert np.isfinite(arr).all()
