"""MultilayerNMF: stacked layers, joint fine-tuning, codes and constraints."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning

from skpart import MultilayerNMF
from skpart._core._multilayer import effective_atoms, fine_tune, fit_layers
from skpart.metrics import reconstruction_error

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def row_sparseness(A):
    """Hoyer sparseness of every row of ``A`` (written out, no skpart code)."""
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[1]
    ratio = np.abs(A).sum(1) / np.sqrt((A * A).sum(1))
    return (np.sqrt(n) - ratio) / (np.sqrt(n) - 1)


@pytest.fixture
def X_digits(digits):
    return digits[0][:300]


def small(**kw):
    params = {
        "n_components": (6, 3),
        "max_iter": 50,
        "fine_tune_iter": 20,
        "random_state": 0,
    }
    return MultilayerNMF(**{**params, **kw})


# -- shapes and attributes ---------------------------------------------------------
def test_shapes_and_attributes(X_digits):
    model = MultilayerNMF((12, 8, 4), max_iter=30, fine_tune_iter=15, random_state=0)
    codes = model.fit_transform(X_digits)
    n, d = X_digits.shape
    assert codes.shape == (n, 4)
    assert model.components_.shape == (4, d)
    assert [H.shape for H in model.layers_] == [(12, d), (8, 12), (4, 8)]
    np.testing.assert_allclose(
        model.components_,
        model.layers_[2] @ model.layers_[1] @ model.layers_[0],
        rtol=1e-10,
        atol=1e-12,
    )
    assert model.n_components_ == 4
    assert model.n_features_in_ == d
    assert isinstance(model.n_iter_, int) and 1 <= model.n_iter_ <= 15
    assert len(model.n_iter_layers_) == 3
    assert len(model.loss_curve_) == model.n_iter_ + 1
    expected_err = np.linalg.norm(X_digits - codes @ model.components_)
    np.testing.assert_allclose(model.reconstruction_err_, expected_err, rtol=1e-8)
    assert list(model.get_feature_names_out()) == [
        f"multilayernmf{i}" for i in range(4)
    ]


def test_bare_int_is_one_layer(X_small):
    model = MultilayerNMF(3, max_iter=50, fine_tune_iter=10, random_state=0)
    codes = model.fit_transform(X_small)
    assert len(model.layers_) == 1
    np.testing.assert_array_equal(model.components_, model.layers_[0])
    assert codes.shape == (X_small.shape[0], 3)


@pytest.mark.parametrize("init", [None, "random", "nndsvd", "nndsvda", "nndsvdar"])
@pytest.mark.parametrize(
    "sparseness", [None, 0.5, (0.6, None)], ids=["free", "all", "first"]
)
def test_nonnegative_and_finite(X_small, init, sparseness):
    model = small(
        n_components=(5, 3),
        max_iter=20,
        fine_tune_iter=5,
        init=init,
        sparseness_components=sparseness,
        sparseness_codes=sparseness,
    )
    codes = model.fit_transform(X_small)
    for A in [codes, model.components_, *model.layers_]:
        assert np.all(np.isfinite(A))
        assert A.min() >= 0
    assert np.abs(codes @ model.components_).max() > 0  # not the trivial solution


# -- the fine-tuning ---------------------------------------------------------------
def test_fine_tuning_loss_written_out_and_monotone(X_digits):
    """Every entry of the loss curve is 0.5 ||X - W H_L ... H_1||^2 of the
    factors after that many sweeps, and it never increases."""
    X = torch.from_numpy(X_digits)
    gen = torch.Generator().manual_seed(0)
    W0, layers0, _, _ = fit_layers(
        X, (10, 5), inits=["nndsvda", "nndsvda"], max_iter=30, generator=gen
    )
    _, _, curve, n_iter = fine_tune(X, W0, layers0, max_iter=8, tol=0)
    assert n_iter == 8 and len(curve) == 9
    for sweeps in range(9):
        W, layers, _, _ = fine_tune(X, W0, layers0, max_iter=sweeps, tol=0)
        C = (layers[1] @ layers[0]).numpy()
        loss = 0.5 * np.sum((X_digits - W.numpy() @ C) ** 2)
        np.testing.assert_allclose(curve[sweeps], loss, rtol=1e-10)
    assert np.all(np.diff(curve) <= 1e-12 * curve[0])
    assert curve[-1] < 0.95 * curve[0]


@pytest.mark.parametrize(
    "constraints",
    [
        {},
        {"sparseness_components": 0.5},
        {"sparseness_codes": 0.4},
        {"sparseness_components": (0.6, 0.3, None), "sparseness_codes": 0.5},
    ],
    ids=["free", "atoms", "codes", "mixed"],
)
def test_estimator_loss_curve_monotone(X_digits, constraints):
    model = MultilayerNMF(
        (12, 8, 5), max_iter=30, fine_tune_iter=25, tol=0, random_state=0, **constraints
    ).fit(X_digits)
    curve = np.asarray(model.loss_curve_)
    assert len(curve) == 26
    assert np.all(np.diff(curve) <= 1e-12 * curve[0])
    assert curve[-1] < curve[0]


def test_fine_tuning_beats_stacking_on_held_out_digits(digits):
    X = digits[0]
    train, test = X[:1000], X[1000:]
    params = {"max_iter": 50, "random_state": 0}
    stacked = MultilayerNMF((16, 6), fine_tune_iter=0, **params).fit(train)
    tuned = MultilayerNMF((16, 6), fine_tune_iter=30, **params).fit(train)
    # Same layer-wise pass: the stacked model is the fine-tuning's start.
    assert stacked.n_iter_ == 0 and stacked.loss_curve_ == tuned.loss_curve_[:1]
    err_stacked = reconstruction_error(stacked, test)
    err_tuned = reconstruction_error(tuned, test)
    assert err_tuned < 0.95 * err_stacked  # about 8% lower at these settings


def test_fine_tuning_stops_at_tol(X_digits):
    """Stop at the first sweep that lowers ||X - W C||_F by less than tol times
    its value before the fine-tuning."""
    model = small(fine_tune_iter=500, tol=1e-3).fit(X_digits)
    error = np.sqrt(2 * np.asarray(model.loss_curve_))
    drops = error[:-1] - error[1:]
    assert 1 < model.n_iter_ < 500
    assert drops[-1] < 1e-3 * error[0]
    assert np.all(drops[:-1] >= 1e-3 * error[0])


def test_convergence_warnings(X_digits):
    with pytest.warns(ConvergenceWarning, match="fine-tuning. Increase fine_tune_"):
        small(fine_tune_iter=1, tol=1e-12).fit(X_digits)
    with pytest.warns(ConvergenceWarning, match="in layer 1. Increase max_iter"):
        small(max_iter=1).fit(X_digits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        small(fine_tune_iter=1, tol=0).fit(X_digits)  # tol=0: no stopping rule


# -- sparseness constraints ----------------------------------------------------------
def test_sparseness_per_layer_exact(X_digits):
    model = MultilayerNMF(
        (12, 6, 4),
        sparseness_components=(0.6, 0.3, None),
        sparseness_codes=(None, 0.4, 0.5),
        max_iter=30,
        fine_tune_iter=15,
        random_state=0,
    )
    codes = model.fit_transform(X_digits)
    np.testing.assert_allclose(row_sparseness(model.layers_[0]), 0.6, atol=1e-4)
    np.testing.assert_allclose(row_sparseness(model.layers_[1]), 0.3, atol=1e-4)
    np.testing.assert_allclose(row_sparseness(codes), 0.5, atol=1e-4)
    per_layer = model.transform_layers(X_digits)
    np.testing.assert_allclose(row_sparseness(per_layer[1]), 0.4, atol=1e-4)
    # The first layer's codes are not constrained: their sparseness varies.
    assert np.ptp(row_sparseness(per_layer[0][per_layer[0].any(1)])) > 0.2


def test_one_sparseness_value_for_all_layers(X_digits):
    model = small(sparseness_components=0.5, sparseness_codes=0.4).fit(X_digits)
    for H in model.layers_:
        np.testing.assert_allclose(row_sparseness(H), 0.5, atol=1e-4)
    for W in model.transform_layers(X_digits):
        np.testing.assert_allclose(row_sparseness(W), 0.4, atol=1e-4)


# -- validation ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": (4, 6)}, r"must not increase with depth: layer 2 has 6"),
        ({"n_components": (6, 3, 4)}, r"layer 3 has 4 components, more than the 3"),
        ({"n_components": (13, 2)}, r"n_components\[0\]=13 .* n_features=12"),
        ({"n_components": (3, 0)}, "positive integers"),
        ({"n_components": (3.0, 2)}, "positive integers"),
        ({"n_components": ()}, "at least one layer"),
        ({"sparseness_codes": (0.5,)}, "sparseness_codes has 1 values for 2 layers"),
        ({"sparseness_components": (0.5, 1.5)}, r"None or floats in \[0, 1\]"),
    ],
)
def test_invalid_parameters(X_small, params, match):
    with pytest.raises(ValueError, match=match):
        small(**params).fit(X_small)


def test_nndsvd_init_needs_enough_samples_per_layer(X_small):
    X = np.hstack([X_small] * 3)  # 30 samples, 36 features
    with pytest.raises(ValueError, match="layer 1 has 31 components for n_samples=30"):
        small(n_components=(31, 2), init="nndsvda").fit(X)
    # init=None switches that layer to random, as scikit-learn's rule does.
    model = small(n_components=(31, 2), fine_tune_iter=5).fit(X)
    assert model.components_.shape == (2, 36)


# -- codes: transform, transform_layers, inverse_transform ------------------------
def test_determinism(X_digits):
    a, b = small().fit(X_digits), small().fit(X_digits)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    np.testing.assert_array_equal(a.transform(X_digits), b.transform(X_digits))
    c = small(random_state=1, init="random").fit(X_digits)
    assert not np.array_equal(a.components_, c.components_)


@pytest.mark.parametrize(
    "sparseness_codes, rtol",
    # With a sparseness target, rounding differences between batch sizes can
    # flip a step's acceptance test: equal to solver accuracy, not bitwise.
    [(None, 1e-10), (0.5, 1e-6)],
)
def test_transform_is_batch_independent(X_digits, sparseness_codes, rtol):
    model = small(sparseness_codes=sparseness_codes).fit(X_digits)
    full = model.transform(X_digits)
    for rows in (slice(0, 1), slice(7, 19), slice(100, 300)):
        part = model.transform(X_digits[rows])
        np.testing.assert_allclose(part, full[rows], rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("sparseness_codes", [None, 0.5])
def test_fit_transform_equals_fit_then_transform(X_digits, sparseness_codes):
    model = small(sparseness_codes=sparseness_codes)
    codes = model.fit_transform(X_digits)
    np.testing.assert_allclose(codes, model.transform(X_digits), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        codes,
        small(sparseness_codes=sparseness_codes).fit(X_digits).transform(X_digits),
        rtol=1e-10,
        atol=1e-12,
    )


def test_transform_layers(X_digits):
    model = MultilayerNMF((12, 8, 4), max_iter=30, fine_tune_iter=10, random_state=0)
    model.fit(X_digits)
    per_layer = model.transform_layers(X_digits)
    assert [W.shape for W in per_layer] == [(300, 12), (300, 8), (300, 4)]
    np.testing.assert_array_equal(per_layer[-1], model.transform(X_digits))
    # Layer l's codes are the best non-negative fit with the atoms H_l ... H_1:
    # more atoms, lower error.
    atoms = [model.layers_[0]]
    for H in model.layers_[1:]:
        atoms.append(H @ atoms[-1])
    errors = [np.linalg.norm(X_digits - W @ C) for W, C in zip(per_layer, atoms)]
    assert errors[0] < errors[1] < errors[2]


def test_inverse_transform(X_digits):
    model = small().fit(X_digits)
    codes = model.transform(X_digits)
    np.testing.assert_allclose(
        model.inverse_transform(codes), codes @ model.components_, rtol=1e-12
    )
    np.testing.assert_allclose(
        model.inverse_transform(sp.csr_matrix(codes)), codes @ model.components_
    )
    with pytest.raises(ValueError, match="X has 4 features, but MultilayerNMF"):
        model.inverse_transform(np.ones((2, 4)))


# -- dtype, sparse input ----------------------------------------------------------
def test_float32_in_float32_out(X_digits):
    X32 = X_digits.astype(np.float32)
    model = small().fit(X32)
    codes = model.transform(X32)
    assert codes.dtype == np.float32
    assert model.components_.dtype == np.float32
    assert all(H.dtype == np.float32 for H in model.layers_)
    assert all(W.dtype == np.float32 for W in model.transform_layers(X32))
    assert model.fit_transform(X32).dtype == np.float32
    # Same model as in float64, up to float32 accuracy: the layer-wise pass
    # agrees closely; the extrapolated HALS may restart at other iterations
    # in the two precisions, so the end of fine-tuning agrees to 1%.
    ref = small().fit(X_digits)
    np.testing.assert_allclose(model.loss_curve_[0], ref.loss_curve_[0], rtol=1e-3)
    np.testing.assert_allclose(model.loss_curve_[-1], ref.loss_curve_[-1], rtol=1e-2)


def test_sparse_input_equals_dense(X_digits):
    X = np.where(X_digits > 0.3, X_digits, 0.0)
    dense = small().fit(X)
    sparse = small().fit(sp.csr_matrix(X))
    np.testing.assert_allclose(sparse.components_, dense.components_, rtol=1e-6)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-8)
    np.testing.assert_allclose(
        sparse.transform(sp.csc_matrix(X)), dense.transform(X), rtol=1e-6, atol=1e-9
    )


def test_core_stays_on_input_dtype_and_device():
    X = torch.rand(40, 10, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    W, layers, _, _ = fit_layers(X, (5, 3), inits=["nndsvda"] * 2, generator=gen)
    W, layers, _, _ = fine_tune(X, W, layers, max_iter=3, sparseness_codes=0.5)
    for T in [W, *layers, *effective_atoms(layers)]:
        assert T.dtype == torch.float32 and T.device == X.device
