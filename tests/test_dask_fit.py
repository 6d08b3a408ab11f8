"""Fits on dask arrays: the same model as in memory, the blocks never gathered."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """A two-worker in-process cluster and its client."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def digits_600():
    from sklearn.datasets import load_digits

    return load_digits().data[:600] / 16.0


def _fit_both(X, chunks, **params):
    """The in-memory and the dask fit of the same model."""
    memory = SparseNMF(**params).fit(X)
    spread = SparseNMF(**params).fit(da.from_array(X, chunks=(chunks, X.shape[1])))
    return memory, spread


def _assert_same_fit(memory, spread, rtol):
    assert memory.n_iter_ == spread.n_iter_
    assert np.abs(memory.components_).max() > 0.1  # not a trivial solution
    np.testing.assert_allclose(
        spread.components_, memory.components_, rtol=rtol, atol=rtol
    )
    np.testing.assert_allclose(
        spread.reconstruction_err_, memory.reconstruction_err_, rtol=1e-10
    )


@pytest.mark.parametrize(
    "params",
    [
        {},
        pytest.param({"solver": "mu"}, marks=pytest.mark.slow),
        pytest.param(
            {"solver": "mu", "beta_loss": "kullback-leibler"}, marks=pytest.mark.slow
        ),
        pytest.param({"sparseness_components": 0.6}, marks=pytest.mark.slow),
        pytest.param(
            {"alpha_W": 1e-3, "alpha_H": 2e-3, "l1_ratio": 0.5},
            marks=pytest.mark.slow,
        ),
        pytest.param({"init": "nndsvd", "shuffle": True}, marks=pytest.mark.slow),
    ],
)
def test_dask_fit_equals_in_memory_fit(cluster, digits_600, params):
    # Same init (the block-wise randomized SVD), same iterations: the
    # distributed fit is the in-memory fit, to rounding.
    params = dict(n_components=8, random_state=0, max_iter=60, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached, alike in both
        memory, spread = _fit_both(digits_600, 100, **params)
    _assert_same_fit(memory, spread, rtol=1e-9)


@pytest.mark.slow
def test_dask_fit_with_sparse_codes_matches_in_memory_error(cluster, digits_600):
    # Hoyer's projected gradient of the codes takes per-sample accept/reject
    # decisions, which amplify the blocks' rounding: the atoms agree at first,
    # then drift apart along equally good solutions.
    params = dict(n_components=8, random_state=0, sparseness_codes=0.5, tol=0)
    memory, spread = _fit_both(digits_600, 100, max_iter=20, **params)
    _assert_same_fit(memory, spread, rtol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory, spread = _fit_both(digits_600, 100, max_iter=80, **params)
    np.testing.assert_allclose(
        spread.reconstruction_err_, memory.reconstruction_err_, rtol=1e-3
    )


@pytest.mark.slow
def test_dask_fit_on_mnist_in_six_blocks(cluster, mnist_train_2000):
    # float32 data: the blocks' statistics are summed in float64 (so the sum
    # does not depend on which worker holds which block) where the in-memory
    # fit accumulates in float32 products, and the init's range finder
    # orthonormalises in float64 (Cholesky QR): the NNDSVD start differs in
    # float32's last digits and the extrapolated iterations amplify it. The
    # fits are equally good; the distributed one is deterministic.
    X = mnist_train_2000[0]
    chunks = -(-X.shape[0] // 6)
    params = dict(n_components=16, random_state=0, tol=0, max_iter=30)
    memory, spread = _fit_both(X, chunks, **params)
    assert spread.components_.dtype == np.float32
    np.testing.assert_allclose(
        spread.reconstruction_err_, memory.reconstruction_err_, rtol=1e-3
    )
    again = SparseNMF(**params).fit(da.from_array(X, chunks=chunks))
    np.testing.assert_array_equal(again.components_, spread.components_)
    assert again.reconstruction_err_ == spread.reconstruction_err_


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"solver": "mu"},
        {"sparseness_components": 0.6},
        {"sparseness_codes": 0.6, "max_iter": 10},
    ],
    ids=["cd", "mu", "hoyer-atoms", "hoyer-codes"],
)
def test_dask_fit_on_mnist_float64_equals_in_memory(cluster, mnist_train_2000, params):
    # The issue's equivalence on MNIST in 6 blocks, in float64 (float32's
    # accumulation order differs, see the test above): same iterations,
    # atoms and error for cd, mu and the Hoyer constraints. The codes'
    # constraint decides per sample and amplifies rounding (see
    # test_dask_fit_with_sparse_codes_matches_in_memory_error): fewer
    # iterations and a looser tolerance there.
    X = mnist_train_2000[0][:1200].astype(np.float64)
    params = {"n_components": 12, "random_state": 0, "tol": 0, "max_iter": 20} | params
    memory, spread = _fit_both(X, 200, **params)
    rtol = 1e-6 if "sparseness_codes" in params else 1e-9
    assert memory.n_iter_ == spread.n_iter_
    np.testing.assert_allclose(
        spread.components_, memory.components_, rtol=rtol, atol=rtol
    )
    np.testing.assert_allclose(
        spread.reconstruction_err_, memory.reconstruction_err_, rtol=rtol
    )


def test_no_block_is_gathered(cluster, digits_600):
    # Transfers out of the workers (to the client or to the other worker) are
    # logged by key: none is a block of X, and all of them are small.
    X = da.from_array(np.tile(digits_600, (4, 1)), chunks=(400, 64)).persist()
    distributed.wait(X)
    start = cluster.run(_worker_time)
    SparseNMF(8, random_state=0, max_iter=20, tol=0).fit(X)
    moved = cluster.run(_outgoing_since, start)
    keys = [key for entries in moved.values() for key, _ in entries]
    sizes = [nbytes for entries in moved.values() for _, nbytes in entries]
    assert keys, "the fit moved nothing: the statistics must come back"
    assert not any(X.name in str(key) for key in keys)
    # Nothing larger than the statistics moved (the largest: the range
    # finder's X^T X Q, 64 x (8 + 10) float64, and W^T X with W^T W): not a
    # block of X (204 800 bytes), nor a block's codes (25 600).
    largest = max(64 * (8 + 10), 8 * 64 + 8 * 8) * 8
    assert max(sizes) <= largest + 1024


def _worker_time(dask_worker):
    from time import time

    return time()


def _outgoing_since(start, dask_worker):
    t0 = start[dask_worker.address]
    entries = [e for e in dask_worker.transfer_outgoing_log if e["start"] >= t0]
    return [(key, nbytes) for entry in entries for key, nbytes in entry["keys"].items()]


def test_transform_is_lazy_and_blockwise(cluster, digits_600):
    X = da.from_array(digits_600, chunks=(150, 32))
    model = SparseNMF(6, random_state=0, max_iter=40, tol=0).fit(digits_600)
    codes = model.transform(X)
    assert isinstance(codes, da.Array)
    assert codes.chunks == ((150,) * 4, (6,))
    # The blocks' products round like the products of any other batch.
    np.testing.assert_allclose(
        codes.compute(), model.transform(digits_600), rtol=1e-12, atol=1e-14
    )
    back = model.inverse_transform(codes)
    assert isinstance(back, da.Array)
    np.testing.assert_allclose(
        back.compute(), model.inverse_transform(model.transform(digits_600))
    )


def test_fit_transform_is_fit_then_transform(cluster, digits_600):
    X = da.from_array(digits_600, chunks=(200, 64))
    model = SparseNMF(6, random_state=0, max_iter=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codes = model.fit_transform(X)
    assert isinstance(codes, da.Array)
    np.testing.assert_allclose(
        codes.compute(), model.transform(digits_600), rtol=1e-12, atol=1e-14
    )


def test_dask_fit_on_the_local_scheduler(digits_600):
    # No distributed client: the same fit on dask's local scheduler.
    X = da.from_array(digits_600, chunks=(100, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = SparseNMF(6, random_state=0, max_iter=30).fit(digits_600)
        spread = SparseNMF(6, random_state=0, max_iter=30).fit(X)
    _assert_same_fit(memory, spread, rtol=1e-9)


@pytest.mark.slow
def test_multilayer_dask_fit_equals_in_memory_fit(cluster, digits_600):
    params = dict(n_components=(8, 4), random_state=0, max_iter=40, fine_tune_iter=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = MultilayerNMF(**params).fit(digits_600)
        spread = MultilayerNMF(**params).fit(da.from_array(digits_600, chunks=100))
    assert memory.n_iter_layers_ == spread.n_iter_layers_
    assert memory.n_iter_ == spread.n_iter_
    np.testing.assert_allclose(spread.loss_curve_, memory.loss_curve_, rtol=1e-10)
    for a, b in zip(spread.layers_, memory.layers_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        spread.reconstruction_err_, memory.reconstruction_err_, rtol=1e-10
    )
    codes = spread.transform(da.from_array(digits_600, chunks=100))
    np.testing.assert_allclose(
        codes.compute(), spread.transform(digits_600), rtol=1e-12, atol=1e-14
    )
    layers = spread.transform_layers(da.from_array(digits_600, chunks=100))
    for lazy, codes in zip(layers, spread.transform_layers(digits_600)):
        assert isinstance(lazy, da.Array)
        np.testing.assert_allclose(lazy.compute(), codes, rtol=1e-12, atol=1e-14)


def test_dask_input_errors(digits_600):
    X = da.from_array(digits_600, chunks=100)
    with pytest.raises(ValueError, match="Negative values in data passed to SparseNMF"):
        SparseNMF(4).fit(-X)
    with pytest.raises(ValueError, match="NaN or infinity"):
        SparseNMF(4).fit(X / 0.0)
    with pytest.raises(ValueError, match="batch_size must be None"):
        SparseNMF(4, batch_size=10).fit(X)
    with pytest.raises(ValueError, match="nndsvdar"):
        SparseNMF(4, init="nndsvdar").fit(X)
    with pytest.raises(ValueError, match="Negative values in data passed to Multi"):
        MultilayerNMF((4, 2)).partial_fit(-X)
    with pytest.raises(ValueError, match="2-D dask array"):
        SparseNMF(4).fit(X[:, 0])
    model = SparseNMF(4, max_iter=5, random_state=0).fit(digits_600)
    with pytest.raises(ValueError, match="X has 32 features"):
        model.transform(X[:, :32])
    before = model.components_.copy()
    with pytest.raises(ValueError, match="Negative values"):
        model.fit(-X)
    np.testing.assert_array_equal(model.components_, before)


def test_custom_init_from_dask_codes(digits_600):
    rng = np.random.RandomState(0)
    W0, H0 = rng.rand(600, 5), rng.rand(5, 64)
    params = dict(n_components=5, init="custom", max_iter=30, tol=0)
    memory = SparseNMF(**params).fit(digits_600, W=W0, H=H0)
    X = da.from_array(digits_600, chunks=120)
    spread = SparseNMF(**params).fit(X, W=da.from_array(W0, chunks=200), H=H0)
    _assert_same_fit(memory, spread, rtol=1e-9)


@pytest.mark.parametrize(
    "params",
    [
        {"batch_size": None},
        {"batch_size": 200},
        # The block-wise random init draws from the generator only what the
        # in-memory one draws (nothing), so the shuffled orders agree too.
        {"batch_size": 200, "init": "random", "shuffle": True},
    ],
)
def test_partial_fit_on_dask_equals_in_memory(digits_600, params):
    # One online step per mini-batch, its codes solved block by block: the
    # statistics and the atoms are those of the in-memory partial_fit.
    params = dict(n_components=8, random_state=0, **params)
    memory, spread = SparseNMF(**params), SparseNMF(**params)
    X = da.from_array(digits_600, chunks=100)
    memory.partial_fit(digits_600).partial_fit(digits_600[:300])
    spread.partial_fit(X).partial_fit(X[:300])
    expected = 2 if params["batch_size"] is None else 5
    assert spread.n_steps_ == memory.n_steps_ == expected
    assert np.abs(memory.components_).max() > 0.1
    np.testing.assert_allclose(
        spread.components_, memory.components_, rtol=1e-10, atol=1e-12
    )
    for key in ("A", "B"):
        np.testing.assert_allclose(
            spread._online_state[key], memory._online_state[key], atol=1e-12
        )


def _assert_same_online_layers(spread, memory, rtol):
    """The layers, ``components_`` and every layer's online statistics of two
    MultilayerNMF, within ``rtol`` of the largest entry of each array."""
    assert spread.n_steps_ == memory.n_steps_
    assert np.abs(memory.components_).max() > 0.1  # not a trivial solution
    for a, b in zip(
        [*spread.layers_, spread.components_], [*memory.layers_, memory.components_]
    ):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    for a, b in zip(spread._online_state, memory._online_state):
        assert a["weight"] == b["weight"] > 0
        for key in ("A", "B"):
            np.testing.assert_allclose(
                a[key], b[key], rtol=rtol, atol=rtol * np.abs(b[key]).max()
            )


@pytest.mark.parametrize(
    "params",
    [
        {"batch_size": None},
        {"batch_size": 200},
        {"batch_size": 200, "solver": "mu", "init": "random"},
        {
            "n_components": (8, 5, 3),
            "batch_size": 150,
            "sparseness_components": [0.6, None, 0.5],
        },
    ],
)
def test_multilayer_partial_fit_on_dask_equals_in_memory(cluster, digits_600, params):
    # Every layer's codes solved block by block with the atoms fixed, every
    # layer's atoms updated from the summed statistics: a fresh start and a
    # continuation give the layers and the statistics of the in-memory
    # partial_fit of the same rows (measured: within 2e-13 of the largest
    # entries).
    params = {"n_components": (8, 4), "random_state": 0, **params}
    memory, spread = MultilayerNMF(**params), MultilayerNMF(**params)
    X = da.from_array(digits_600, chunks=100)
    memory.partial_fit(digits_600).partial_fit(digits_600[:300])
    spread.partial_fit(X).partial_fit(X[:300])
    size = params["batch_size"] or 600
    assert spread.n_steps_ == -(-600 // size) - (-300 // size)
    _assert_same_online_layers(spread, memory, rtol=1e-12)


def test_multilayer_partial_fit_on_dask_float32_and_after_fit(cluster, digits_600):
    # float32: the blocks' statistics are summed in float64, the in-memory
    # ones are float32 products of the whole batch (measured: 1e-6 apart,
    # relative). After a fit, partial_fit continues from its layers.
    X32 = digits_600.astype(np.float32)
    params = dict(n_components=(8, 4), random_state=0, batch_size=200, max_iter=2)
    memory, spread = MultilayerNMF(**params), MultilayerNMF(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two passes: not converged
        memory.fit(X32).partial_fit(X32)
        spread.fit(X32).partial_fit(da.from_array(X32, chunks=150))
    assert spread.components_.dtype == np.float32
    _assert_same_online_layers(spread, memory, rtol=1e-4)


def test_multilayer_partial_fit_on_dask_with_sparse_codes(cluster, digits_600):
    # With a sparseness target of the codes, the in-memory codes of a sample
    # depend on its batch at the level of rounding (Hoyer's projected
    # gradient amplifies the ~1e-16 differences of the projection of rows in
    # batches of different sizes to ~1e-9), so the block-wise step can only
    # agree to that level (measured: 1e-8 of the largest entries).
    params = dict(n_components=(8, 4), random_state=0, batch_size=200)
    params["sparseness_codes"] = [None, 0.5]
    memory, spread = MultilayerNMF(**params), MultilayerNMF(**params)
    memory.partial_fit(digits_600)
    spread.partial_fit(da.from_array(digits_600, chunks=100))
    _assert_same_online_layers(spread, memory, rtol=1e-6)


def test_multilayer_partial_fit_gathers_no_block(cluster, digits_600):
    # Only the statistics leave the workers: the largest, the range finder's
    # X^T X Q of the init (64 x 14 float64); never a block of X (204 800
    # bytes) nor a block's codes (25 600).
    X = da.from_array(np.tile(digits_600, (4, 1)), chunks=(400, 64)).persist()
    distributed.wait(X)
    start = cluster.run(_worker_time)
    MultilayerNMF((8, 4), random_state=0).partial_fit(X)
    moved = cluster.run(_outgoing_since, start)
    keys = [key for entries in moved.values() for key, _ in entries]
    sizes = [nbytes for entries in moved.values() for _, nbytes in entries]
    assert keys, "nothing moved: the statistics must come back"
    assert not any(X.name in str(key) for key in keys)
    assert max(sizes) <= 64 * (8 + 10) * 8 + 1024


@pytest.mark.slow
def test_autoencoder_trains_on_dask_blocks(cluster, digits_600):
    # Epochs of partial_fit over the blocks in a shuffled order: the scale is
    # the whole array's, the codes are lazy, and a refit repeats itself.
    X = da.from_array(digits_600 * 2.0, chunks=100)
    params = dict(n_components=8, max_iter=3, random_state=0, batch_size=50)
    model = NonnegativeSparseAutoencoder(**params).fit(X)
    assert model.input_scale_ == pytest.approx(2.0)
    assert model.n_iter_ == 3
    np.testing.assert_allclose(
        model.reconstruction_err_, -model.score(digits_600 * 2.0), rtol=1e-10
    )
    codes = model.transform(X)
    assert isinstance(codes, da.Array)
    np.testing.assert_allclose(codes.compute(), model.transform(digits_600 * 2.0))
    again = NonnegativeSparseAutoencoder(**params).fit(X)
    np.testing.assert_array_equal(again.components_, model.components_)
    # Trained: better than the start.
    start = NonnegativeSparseAutoencoder(**dict(params, max_iter=1)).fit(X)
    assert model.reconstruction_err_ < start.reconstruction_err_
    with pytest.raises(ValueError, match="early_stopping=True needs the data"):
        NonnegativeSparseAutoencoder(8, early_stopping=True).fit(X)


def test_skpart_does_not_import_dask():
    code = (
        "import numpy as np, sys, skpart\n"
        "skpart.SparseNMF(2, max_iter=5).fit_transform(np.eye(4) + 0.1)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed')))"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "params", [{}, {"sparseness_W": 0.5}, {"solver": "mu", "sparseness_H": 0.5}]
)
def test_block_fit_of_one_block_is_the_in_memory_fit(digits_600, params):
    # The block-wise driver (no dask) on a single block repeats fit_nmf: same
    # iterates and stopping, the atoms equal to rounding (the rebalancing's
    # norms come from summed squares).
    import torch

    from skpart._core._distributed import ListBlocks, data_summary, fit_nmf_blocks
    from skpart._core._init import initialize_nmf
    from skpart._core._nmf import fit_nmf

    X = torch.from_numpy(digits_600)
    W0, H0 = initialize_nmf(X, 6, "nndsvda", generator=torch.Generator())
    W, H, n_iter, converged = fit_nmf(X, W0, H0, max_iter=60, **params)
    blocks = ListBlocks([X], [{"index": 0, "W": W0}])
    summary = blocks.step(data_summary, {"dtype": X.dtype})
    Hb, n_iter_b, converged_b, _ = fit_nmf_blocks(
        blocks, H0, summary=summary, dtype=X.dtype, max_iter=60, **params
    )
    assert (n_iter_b, converged_b) == (n_iter, converged)
    np.testing.assert_allclose(Hb, H, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(blocks.states[0]["W"], W, rtol=1e-12, atol=1e-14)
