"""Tests of the online (mini-batch, streamed) fits: SparseNMF, MultilayerNMF and
the autoencoder's streamed path over a numpy.memmap."""

import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF
from skpart._estimators._streaming import MemmapRows, release_pages, row_slices


def _hoyer_rows(A):
    """Hoyer sparseness of every row of ``A`` (float64)."""
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[1]
    ratio = np.abs(A).sum(1) / np.sqrt((A * A).sum(1))
    return (np.sqrt(n) - ratio) / (np.sqrt(n) - 1)


def _relative_error(model, X):
    codes = model.transform(X)
    return np.linalg.norm(X - model.inverse_transform(codes)) / np.linalg.norm(X)


#: Ten passes over the 1 500 training digits of ``digits_split`` in 6
#: mini-batches each (60 steps), for the online-vs-full-batch comparisons.
TEN_PASSES = dict(
    batch_size=250,
    forget_factor=0.2,
    max_iter=10,
    tol=0,
    transform_max_iter=100,
    random_state=0,
)


@pytest.fixture(scope="module")
def digits_split():
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    return X[:1500], X[1500:]


@pytest.fixture
def memmap_of(tmp_path):
    """Write an array to a read-only ``numpy.memmap`` on disk."""

    def make(X):
        path = tmp_path / "X.dat"
        out = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
        out[:] = X
        out.flush()
        del out
        return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)

    return make


# -- SparseNMF ----------------------------------------------------------------
@pytest.mark.slow
def test_online_error_close_to_full_batch(digits_split):
    X_train, X_test = digits_split
    full = SparseNMF(16, max_iter=200, random_state=0).fit(X_train)
    online = SparseNMF(16, **TEN_PASSES).fit(X_train)
    full_err = _relative_error(full, X_test)
    assert full_err < 0.3  # not a trivial solution
    assert online.n_iter_ == 10 and online.n_steps_ == 60
    # Ten passes over 1500 digits: within 8% of the converged full-batch fit on
    # held-out digits (6.5% measured); the error estimate tracks the fit.
    assert _relative_error(online, X_test) <= 1.08 * full_err
    assert online.reconstruction_err_ == pytest.approx(
        full.reconstruction_err_, rel=0.15
    )


@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_partial_fit_keeps_sparseness_exactly(digits_split, solver):
    X_train, X_test = digits_split
    model = SparseNMF(
        12,
        solver=solver,
        sparseness_components=0.6,
        sparseness_codes=0.5,
        batch_size=100,
        max_iter=30,
        random_state=0,
    )
    for sl in row_slices(X_train.shape[0], 500):
        model.partial_fit(X_train[sl])
        assert (model.components_ >= 0).all()
        np.testing.assert_allclose(_hoyer_rows(model.components_), 0.6, atol=1e-4)
    codes = model.transform(X_test)
    assert (codes >= 0).all()
    np.testing.assert_allclose(_hoyer_rows(codes), 0.5, atol=1e-4)
    assert model.n_steps_ == 15


def test_partial_fit_chunks_equal_one_pass_of_fit(digits_split):
    # forget_factor=1 keeps all the past: partial_fit on the mini-batches, one
    # call each, is the same computation as one pass of fit.
    X = digits_split[0][:600]
    kw = dict(n_components=8, batch_size=150, forget_factor=1.0, tol=0, random_state=0)
    fitted = SparseNMF(max_iter=1, **kw).fit(X)
    streamed = SparseNMF(**kw)
    for sl in row_slices(X.shape[0], 150):
        streamed.partial_fit(X[sl])
    np.testing.assert_array_equal(streamed.components_, fitted.components_)
    assert streamed.n_steps_ == fitted.n_steps_ == 4


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_memmap_same_result_as_array(digits_split, memmap_of):
    X = digits_split[0].astype(np.float32)
    X_map = memmap_of(X)
    kw = dict(n_components=10, batch_size=128, max_iter=3, random_state=0)
    on_array = SparseNMF(**kw).fit(X)
    on_map = SparseNMF(**kw).fit(X_map)
    assert on_map.components_.dtype == np.float32
    assert on_map.n_features_in_ == 64
    np.testing.assert_array_equal(on_map.components_, on_array.components_)
    np.testing.assert_array_equal(on_map.transform(X_map), on_array.transform(X))
    np.testing.assert_array_equal(on_map.fit_transform(X_map), on_array.transform(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_streamed_transform_equals_whole_batch_transform(digits_split):
    X_train, X_test = digits_split
    model = SparseNMF(
        10, batch_size=64, max_iter=2, transform_max_iter=50, random_state=0
    ).fit(X_train)
    streamed = model.transform(X_test)
    whole = model.set_params(batch_size=None).transform(X_test)
    np.testing.assert_array_equal(streamed, whole)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("shuffle", [False, True])
def test_online_fit_is_deterministic(digits_split, shuffle):
    X = digits_split[0]
    kw = dict(batch_size=200, max_iter=2, shuffle=shuffle, random_state=3)
    first = SparseNMF(8, **kw).fit(X)
    second = SparseNMF(8, **kw).fit(X)
    np.testing.assert_array_equal(first.components_, second.components_)
    assert first.reconstruction_err_ == second.reconstruction_err_


def test_partial_fit_n_features_mismatch(digits_split):
    X = digits_split[0]
    model = SparseNMF(5, random_state=0).partial_fit(X[:100])
    with pytest.raises(
        ValueError, match="X has 63 features, but SparseNMF is expecting 64"
    ):
        model.partial_fit(X[100:200, :-1])


def test_partial_fit_survives_pickling(digits_split):
    X = digits_split[0]
    kw = dict(n_components=6, sparseness_components=0.5, random_state=0)
    straight = SparseNMF(**kw).partial_fit(X[:300]).partial_fit(X[300:600])
    restored = pickle.loads(pickle.dumps(SparseNMF(**kw).partial_fit(X[:300])))
    restored.partial_fit(X[300:600])
    np.testing.assert_array_equal(restored.components_, straight.components_)


def test_partial_fit_continues_a_full_batch_fit(digits_split):
    X_train, X_test = digits_split
    model = SparseNMF(10, max_iter=100, random_state=0).fit(X_train)
    before = _relative_error(model, X_test)
    model.partial_fit(X_train[:500])
    assert model.n_steps_ == 1
    # One step from the fitted atoms on a third of the data stays close.
    assert _relative_error(model, X_test) <= 1.05 * before


def test_online_needs_frobenius_loss(digits_split):
    model = SparseNMF(4, solver="mu", beta_loss="kullback-leibler", batch_size=50)
    with pytest.raises(ValueError, match="streams only the Frobenius loss"):
        model.fit(digits_split[0])


def test_online_convergence_warning(digits_split):
    model = SparseNMF(4, batch_size=500, max_iter=1, random_state=0)
    with pytest.warns(ConvergenceWarning, match="Maximum number of iterations 1"):
        model.fit(digits_split[0])


def test_release_pages_keeps_the_data(memmap_of):
    X = np.arange(4096 * 8, dtype=np.float64).reshape(-1, 8)
    X_map = memmap_of(X)
    before = X_map[100:3000].copy()
    release_pages(X_map[100:3000])
    np.testing.assert_array_equal(X_map[100:3000], before)
    release_pages(X)  # not a memmap: nothing happens
    copy_on_write = np.memmap(X_map.filename, dtype=X.dtype, mode="c", shape=X.shape)
    copy_on_write[0, 0] = -1.0
    release_pages(copy_on_write)  # mode "c": left alone, the change stays
    assert copy_on_write[0, 0] == -1.0


# -- MultilayerNMF -------------------------------------------------------------
@pytest.mark.slow
def test_multilayer_online_close_to_sequential_pass(digits_split):
    X_train, X_test = digits_split
    stacked = MultilayerNMF((16, 8), fine_tune_iter=0, random_state=0).fit(X_train)
    online = MultilayerNMF((16, 8), **TEN_PASSES).fit(X_train)
    stacked_err = _relative_error(stacked, X_test)
    assert stacked_err < 0.45  # not a trivial solution
    assert online.n_iter_ == 10 and online.n_iter_layers_ == [10, 10]
    assert online.n_steps_ == 60
    # The online layer-wise pass lands within 8% of the full-batch sequential
    # pass on held-out digits (4.6% measured).
    assert _relative_error(online, X_test) <= 1.08 * stacked_err
    assert [H.shape for H in online.layers_] == [(16, 64), (8, 16)]
    np.testing.assert_allclose(
        online.components_, online.layers_[1] @ online.layers_[0], rtol=1e-12
    )


def test_multilayer_partial_fit_keeps_sparseness_exactly(digits_split):
    X_train, X_test = digits_split
    model = MultilayerNMF(
        (12, 6),
        sparseness_components=[0.5, 0.3],
        sparseness_codes=0.4,
        batch_size=250,
        random_state=0,
    )
    for sl in row_slices(X_train.shape[0], 500):
        model.partial_fit(X_train[sl])
    assert model.n_steps_ == 6
    for H, target in zip(model.layers_, [0.5, 0.3]):
        assert (H >= 0).all()
        np.testing.assert_allclose(_hoyer_rows(H), target, atol=1e-4)
    for codes in model.transform_layers(X_test):
        assert (codes >= 0).all()
        np.testing.assert_allclose(_hoyer_rows(codes), 0.4, atol=1e-4)


def test_one_layer_multilayer_streams_as_sparse_nmf(digits_split):
    # Both estimators run the same online fit; with one layer, MultilayerNMF's
    # step is SparseNMF's step (same start, statistics, codes and atoms).
    X = digits_split[0][:600]
    kw = dict(
        batch_size=150,
        max_iter=2,
        tol=0,
        transform_max_iter=50,
        sparseness_components=0.5,
        sparseness_codes=0.4,
        random_state=0,
    )
    single = SparseNMF(8, **kw).fit(X)
    stacked = MultilayerNMF(8, **kw).fit(X)
    assert single.n_steps_ == stacked.n_steps_ == 8
    np.testing.assert_array_equal(stacked.components_, single.components_)
    single.partial_fit(X[:300])
    stacked.partial_fit(X[:300])
    np.testing.assert_array_equal(stacked.components_, single.components_)
    np.testing.assert_array_equal(stacked.transform(X), single.transform(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_multilayer_memmap_same_result_as_array(digits_split, memmap_of):
    X = digits_split[0].astype(np.float32)
    X_map = memmap_of(X)
    kw = dict(n_components=(8, 4), batch_size=200, max_iter=2, random_state=0)
    on_array = MultilayerNMF(**kw).fit(X)
    on_map = MultilayerNMF(**kw).fit(X_map)
    for a, b in zip(on_map.layers_, on_array.layers_):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(on_map.transform(X_map), on_array.transform(X))
    for a, b in zip(on_map.transform_layers(X_map), on_array.transform_layers(X)):
        np.testing.assert_array_equal(a, b)
    # Streamed transforms equal whole-batch ones.
    whole = on_array.set_params(batch_size=None, transform_max_iter=200)
    np.testing.assert_array_equal(on_map.transform(X_map), whole.transform(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_multilayer_online_is_deterministic(digits_split):
    X = digits_split[0]
    kw = dict(n_components=(8, 4), batch_size=300, max_iter=2, random_state=5)
    first = MultilayerNMF(**kw).fit(X)
    second = MultilayerNMF(**kw).fit(X)
    for a, b in zip(first.layers_, second.layers_):
        np.testing.assert_array_equal(a, b)


def test_multilayer_partial_fit_n_features_mismatch(digits_split):
    X = digits_split[0]
    model = MultilayerNMF((4, 2), random_state=0).partial_fit(X[:100])
    with pytest.raises(
        ValueError, match="X has 63 features, but MultilayerNMF is expecting 64"
    ):
        model.partial_fit(X[100:200, :-1])


# -- the autoencoder's streamed path ------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "params",
    [{}, {"early_stopping": True}, {"weight_init": "nmf", "solver": "sgd"}],
    ids=["adam", "early_stopping", "nmf_init"],
)
def test_autoencoder_memmap_same_result_as_array(digits_split, memmap_of, params):
    X = digits_split[0].astype(np.float32)
    X_map = memmap_of(X)
    kw = dict(n_components=12, max_iter=2, batch_size=64, random_state=0, **params)
    on_array = NonnegativeSparseAutoencoder(**kw).fit(X)
    on_map = NonnegativeSparseAutoencoder(**kw).fit(X_map)
    # The same mini-batches, read from disk: the same weights, up to the
    # rounding of the mean row (summed chunk by chunk in float64).
    assert on_map.components_.dtype == np.float32
    np.testing.assert_allclose(on_map.components_, on_array.components_, atol=1e-6)
    np.testing.assert_allclose(on_map.loss_curve_, on_array.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(
        on_map.transform(X_map), on_array.transform(X), atol=1e-6
    )
    assert (on_map.components_ >= 0).all()


def test_autoencoder_partial_fit_on_memmap(digits_split, memmap_of):
    X = digits_split[0].astype(np.float32)
    X_map = memmap_of(X)
    kw = dict(n_components=8, batch_size=64, random_state=0)
    on_array = NonnegativeSparseAutoencoder(**kw).partial_fit(X).partial_fit(X)
    on_map = NonnegativeSparseAutoencoder(**kw).partial_fit(X_map).partial_fit(X_map)
    assert on_map.n_iter_ == 2
    np.testing.assert_allclose(on_map.components_, on_array.components_, atol=1e-6)


def test_memmap_rows_read_what_a_tensor_gives(digits_split, memmap_of):
    X = digits_split[0].astype(np.float32)
    rows = MemmapRows(
        memmap_of(X),
        dtype=np.float32,
        device=torch.device("cpu"),
        mean=torch.from_numpy(X.mean(0)),
    )
    Xt = torch.from_numpy(X)
    idx = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(0))
    assert rows.shape == tuple(Xt.shape) and rows.numel() == Xt.numel()
    assert torch.equal(rows[idx[:50]], Xt[idx[:50]])
    assert torch.equal(rows[10:20], Xt[10:20])
    sub = rows.subset(idx[100:])
    assert sub.shape == (X.shape[0] - 100, X.shape[1])
    assert torch.equal(sub[5:9], Xt[idx[100:]][5:9])
    assert torch.equal(sub[torch.tensor([3, 0])], Xt[idx[100:]][[3, 0]])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.slow
@pytest.mark.parametrize(
    "make",
    [
        lambda: SparseNMF(8, batch_size=256, max_iter=1, random_state=0),
        lambda: MultilayerNMF((8, 4), batch_size=256, max_iter=1, random_state=0),
        lambda: NonnegativeSparseAutoencoder(8, batch_size=256, max_iter=1),
    ],
    ids=["SparseNMF", "MultilayerNMF", "autoencoder"],
)
def test_memmap_is_never_copied_whole(digits_split, memmap_of, make):
    # 24 000 x 64 float32 (6 MB) on disk: the NumPy allocations of a fit stay
    # at a few chunks (tracemalloc sees NumPy's buffers, not torch's).
    X = np.tile(digits_split[0].astype(np.float32), (16, 1))
    X_map = memmap_of(X)
    # A first fit does the one-time allocations (imports, caches), which are
    # not copies of the data.
    make().fit(X[:100])
    tracemalloc.start()
    try:
        make().fit(X_map)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.4 * X.nbytes


# -- sklearn's checks on the streamed configurations ------------------------
STREAMED = [
    SparseNMF(
        n_components=3, batch_size=10, max_iter=2, transform_max_iter=20, random_state=0
    ),
    MultilayerNMF(
        n_components=(2, 1), batch_size=10, max_iter=2, transform_max_iter=20
    ),
]


@parametrize_with_checks(STREAMED)
def test_streamed_estimators_pass_sklearn_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
