"""Bad input and hard cases on all three estimators: clear errors, finite results."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF

# Small, fast settings; each estimator makes 3 components (2 + 3 for the stack).
FACTORIES = {
    "SparseNMF": lambda **kw: SparseNMF(
        **{"n_components": 3, "max_iter": 50, "random_state": 0, **kw}
    ),
    "MultilayerNMF": lambda **kw: MultilayerNMF(
        **{
            "n_components": (4, 3),
            "max_iter": 30,
            "fine_tune_iter": 10,
            "random_state": 0,
            **kw,
        }
    ),
    "NonnegativeSparseAutoencoder": lambda **kw: NonnegativeSparseAutoencoder(
        **{"n_components": 3, "max_iter": 5, "batch_size": 8, "random_state": 0, **kw}
    ),
}
NMF_LIKE = ["SparseNMF", "MultilayerNMF"]
ALL = list(FACTORIES)


@pytest.fixture
def X():
    rng = np.random.RandomState(0)
    return rng.rand(20, 6)


def fitted(name, X, **kw):
    return FACTORIES[name](**kw).fit(X)


def assert_finite_nonneg(A):
    A = A.toarray() if sp.issparse(A) else np.asarray(A)
    assert np.all(np.isfinite(A)), "result has NaN or inf"
    assert A.min() >= 0, "result has negative entries"


# -- errors --------------------------------------------------------------------
@pytest.mark.parametrize("name", NMF_LIKE)
def test_negative_values_refused(name, X):
    with pytest.raises(ValueError, match=f"Negative values in data passed to {name}"):
        FACTORIES[name]().fit(X - 0.5)
    model = fitted(name, X)
    with pytest.raises(ValueError, match="Negative values"):
        model.transform(X - 0.5)


def test_autoencoder_handles_real_valued_input(X):
    model = fitted("NonnegativeSparseAutoencoder", X - 0.5)
    codes = model.transform(X - 0.5)
    assert np.all(np.isfinite(codes))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_refused(name, bad, X):
    X = X.copy()
    X[0, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        FACTORIES[name]().fit(X)


@pytest.mark.parametrize("name", ALL)
def test_shapes_refused(name, X):
    with pytest.raises(ValueError, match="Expected 2D array"):
        FACTORIES[name]().fit(X[0])
    with pytest.raises(ValueError, match="0 sample"):
        FACTORIES[name]().fit(X[:0])
    with pytest.raises(ValueError, match="could not convert|dtype|string"):
        FACTORIES[name]().fit(np.array([["a", "b"], ["c", "d"]]))


@pytest.mark.parametrize("name", ALL)
def test_wrong_number_of_features_at_transform(name, X):
    model = fitted(name, X)
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :4])
    with pytest.raises(ValueError, match="features"):
        model.inverse_transform(np.ones((2, model.n_components_ + 1)))


@pytest.mark.parametrize("name", ALL)
def test_unfitted_use(name, X):
    model = FACTORIES[name]()
    with pytest.raises(NotFittedError):
        model.transform(X)
    with pytest.raises(NotFittedError):
        model.inverse_transform(X[:, :3])


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("SparseNMF", {"n_components": -1}, "n_components"),
        ("SparseNMF", {"max_iter": 0}, "max_iter"),
        ("SparseNMF", {"sparseness_components": 1.5}, "sparseness_components"),
        ("SparseNMF", {"sparseness_codes": -0.1}, "sparseness_codes"),
        ("SparseNMF", {"device": "tpu"}, "device"),
        ("MultilayerNMF", {"n_components": (3, 4)}, "increase|non-increasing"),
        ("MultilayerNMF", {"n_components": (0, 2)}, "n_components"),
        ("MultilayerNMF", {"sparseness_codes": 2.0}, "sparseness_codes"),
        ("NonnegativeSparseAutoencoder", {"sparsity_target": 1.5}, "sparsity_target"),
        ("NonnegativeSparseAutoencoder", {"sparsity": "l7"}, "sparsity"),
        ("NonnegativeSparseAutoencoder", {"learning_rate_init": -1.0}, "learning_rate"),
        ("NonnegativeSparseAutoencoder", {"batch_size": 0}, "batch_size"),
    ],
)
def test_out_of_range_parameters(name, params, match, X):
    with pytest.raises(ValueError, match=match):
        FACTORIES[name](**params).fit(X)


# -- hard cases: finite results, no NaN, no hang -------------------------------
@pytest.mark.parametrize("name", ALL)
def test_sparse_input(name, X):
    Xs = sp.csr_matrix(np.where(X > 0.5, X, 0.0))
    model = fitted(name, Xs)
    assert_finite_nonneg(model.transform(Xs))


@pytest.mark.parametrize("name", ALL)
def test_float32_kept_and_int_accepted(name, X):
    model = fitted(name, X.astype(np.float32))
    assert model.transform(X.astype(np.float32)).dtype == np.float32
    assert model.components_.dtype == np.float32
    Xi = (X * 10).astype(np.int64)
    codes = fitted(name, Xi).transform(Xi)
    assert codes.dtype == np.float64
    assert np.all(np.isfinite(codes))


@pytest.mark.parametrize("name", ALL)
def test_all_zero_matrix_and_zero_row_column(name, X):
    Z = np.zeros_like(X)
    model = fitted(name, Z)
    assert np.all(np.isfinite(model.transform(Z)))
    assert np.all(np.isfinite(model.components_))
    X = X.copy()
    X[3] = 0
    X[:, 2] = 0
    model = fitted(name, X)
    assert np.all(np.isfinite(model.transform(X)))
    assert np.all(np.isfinite(model.components_))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("scale", [1e6, 1e-6])
def test_extreme_scales(name, scale, X):
    model = fitted(name, X * scale)
    codes = model.transform(X * scale)
    assert np.all(np.isfinite(codes))
    assert np.all(np.isfinite(model.components_))
    if name in NMF_LIKE:
        # Scale-equivariant up to iteration details: relative error is sane.
        X_hat = model.inverse_transform(codes)
        rel = np.linalg.norm(X * scale - X_hat) / np.linalg.norm(X * scale)
        assert rel < 0.5


@pytest.mark.parametrize("name", ALL)
def test_single_sample_transform(name, X):
    model = fitted(name, X)
    one = model.transform(X[:1])
    assert one.shape == (1, model.n_components_)
    np.testing.assert_allclose(one, model.transform(X)[:1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NMF_LIKE)
@pytest.mark.parametrize("s", [0.0, 1.0])
def test_sparseness_ends(name, s, X):
    model = fitted(name, X, sparseness_components=s, sparseness_codes=s)
    assert_finite_nonneg(model.transform(X))
    assert_finite_nonneg(model.components_)


def test_extreme_sparsity_penalty(X):
    model = fitted(
        "NonnegativeSparseAutoencoder", X, sparsity_target=1e-4, sparsity_weight=1e3
    )
    assert np.all(np.isfinite(model.transform(X)))
    assert np.all(np.isfinite(model.components_))
    assert np.all(np.isfinite(model.loss_curve_))


# -- persistence and determinism -------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_pickle_round_trip_and_determinism(name, X):
    model = fitted(name, X)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.transform(X), model.transform(X))
    again = fitted(name, X)
    np.testing.assert_array_equal(again.components_, model.components_)
    np.testing.assert_array_equal(again.transform(X), model.transform(X))
