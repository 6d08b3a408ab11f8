"""NonnegativeSparseAutoencoder: a failed call leaves the estimator as it was,
and a fitted model never changes under the user or goes silently wrong.

Each test proves one promise: an interrupt or a diverged training undoes the
whole call (fitted attributes, optimiser state, generator); held arrays are
copies; results do not depend on the scale of the data; divergence is a clear
error; and what already held (inputs never written, threads restored, clear
device errors, pickles) stays tested.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skpart import NonnegativeSparseAutoencoder
from skpart._core._autoencoder import (
    History,
    Objective,
    SparseAutoencoder,
    initialize_autoencoder,
    make_optimizer,
    train,
)
from skpart._core._device import make_generator

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

KW = {"n_components": 6, "max_iter": 3, "batch_size": 32, "random_state": 0}


@pytest.fixture(scope="module")
def digits(digits):
    """The first 300 of conftest's digits in [0, 1] (float64, 64 features;
    the largest value is 1, so the data scale is 1)."""
    return digits[0][:300]


def fitted_state(model):
    """Deep copies of the public fitted attributes (names ending in ``_``)."""
    return {
        k: copy.deepcopy(v)
        for k, v in vars(model).items()
        if k.endswith("_") and not k.startswith("_")
    }


def assert_same(a, b):
    """``a`` and ``b`` are equal, exactly: dicts, lists, arrays, tensors."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype
        assert_array_equal(a, b)
    else:
        assert a == b or (a != a and b != b)  # NaN equals NaN here


def session_state(model):
    """What the next ``partial_fit`` continues from besides the attributes:
    the optimiser state, the training record and the generator."""
    return {
        "optimizer": copy.deepcopy(model._optimizer.state_dict()),
        "loss_curve": list(model._history.loss_curve),
        "n_iter": model._history.n_iter,
        "best": model._history.stopping.best,
        "generator": model._generator.get_state().clone(),
    }


def interrupt_at(mp, n_calls):
    """Patch the training loop to raise ``KeyboardInterrupt`` at the
    ``n_calls``-th call of ``Objective.project``, which runs after every
    optimiser step (and once after the initialisation). Returns a dict whose
    ``"module"`` is the module being trained when the interrupt came."""
    seen = {"calls": 0}
    project = Objective.project

    def project_then_interrupt(self, module):
        project(self, module)
        seen["calls"] += 1
        if seen["calls"] == n_calls:
            seen["module"] = module
            raise KeyboardInterrupt

    mp.setattr(Objective, "project", project_then_interrupt)
    return seen


# -- an interrupt undoes the whole call ------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_interrupted_partial_fit_changes_nothing(digits, monkeypatch, solver):
    X1, X2, X3 = digits[:100], digits[100:200], digits[200:]
    reference = NonnegativeSparseAutoencoder(**KW, solver=solver).partial_fit(X1)
    model = NonnegativeSparseAutoencoder(**KW, solver=solver).partial_fit(X1)
    attributes, session = fitted_state(model), session_state(model)
    with monkeypatch.context() as mp:
        # Mid-epoch for the mini-batch solvers (4 steps per epoch); after the
        # one step of L-BFGS.
        seen = interrupt_at(mp, 1 if solver == "lbfgs" else 2)
        with pytest.raises(KeyboardInterrupt):
            model.partial_fit(X2)
    # Guard: the interrupted call had moved the weights it trained.
    moved = seen["module"].decoder_weight.detach().numpy()
    assert not np.array_equal(moved, attributes["components_"])
    assert_same(fitted_state(model), attributes)
    assert_same(session_state(model), session)
    # The next call continues as if the failed one had never been made.
    reference.partial_fit(X3)
    model.partial_fit(X3)
    assert_same(fitted_state(model), fitted_state(reference))
    assert_same(session_state(model), session_state(reference))


def test_interrupted_fit_leaves_an_unfitted_model_unfitted(digits, monkeypatch):
    model = NonnegativeSparseAutoencoder(**KW)
    with monkeypatch.context() as mp:
        interrupt_at(mp, 5)
        with pytest.raises(KeyboardInterrupt):
            model.fit(digits)
    assert vars(model) == vars(clone(model))
    with pytest.raises(NotFittedError, match="not fitted"):
        model.transform(digits)
    # And a fit afterwards is that of a new model.
    model.fit(digits)
    assert_same(
        fitted_state(model),
        fitted_state(NonnegativeSparseAutoencoder(**KW).fit(digits)),
    )


@pytest.mark.parametrize("warm_start", [False, True])
def test_interrupted_refit_on_wider_data_keeps_the_old_model(
    digits, monkeypatch, warm_start
):
    model = NonnegativeSparseAutoencoder(**KW, warm_start=warm_start).fit(digits)
    attributes = fitted_state(model)
    codes = model.transform(digits)
    wider = np.hstack([digits, digits[:, :8]])
    model.set_params(warm_start=False)
    with monkeypatch.context() as mp:
        interrupt_at(mp, 3)
        with pytest.raises(KeyboardInterrupt):
            model.fit(wider)
    assert_same(fitted_state(model), attributes)
    assert model.n_features_in_ == model.components_.shape[1] == 64
    assert_array_equal(model.transform(digits), codes)


def test_convergence_warning_as_error_leaves_the_model_as_it_was(digits):
    # Under -W error::ConvergenceWarning the fit fails: it must not commit.
    model = NonnegativeSparseAutoencoder(**KW)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="Increase max_iter"):
            model.fit(digits)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.transform(digits)


@pytest.mark.parametrize("fitted", [False, True])
def test_invalid_chunk_of_a_memmap_changes_nothing(digits, tmp_path, fitted):
    # 4200 rows: the memmap is validated in chunks of 4096 rows, and the NaN
    # is in the second chunk, after the first one reset n_features_in_.
    X = np.tile(digits[:, :5], (14, 1))
    X_map = np.lib.format.open_memmap(
        tmp_path / "X.npy", mode="w+", dtype=X.dtype, shape=X.shape
    )
    X_map[:] = X
    X_map[-1, 0] = np.nan
    X_map.flush()
    model = NonnegativeSparseAutoencoder(**KW)
    if fitted:
        model.partial_fit(X[:100])
    before = vars(model).copy()
    attributes = fitted_state(model)
    for call in (model.fit, model.partial_fit):
        with pytest.raises(ValueError, match="NaN"):
            call(X_map)
        assert set(vars(model)) == set(before)
        assert_same(fitted_state(model), attributes)
    if not fitted:
        with pytest.raises(NotFittedError, match="not fitted"):
            model.transform(X)


# -- fitted arrays are copies ------------------------------------------------------


@pytest.mark.parametrize("first", ["fit", "partial_fit"])
def test_held_fitted_attributes_never_change(digits, first):
    model = getattr(NonnegativeSparseAutoencoder(**KW), first)(digits)
    held = {k: v for k, v in vars(model).items() if k.endswith("_")}
    copies = copy.deepcopy(held)
    model.partial_fit(digits).partial_fit(digits)
    # Guard: the model did change.
    assert not np.array_equal(model.components_, copies["components_"])
    for name in held:
        assert_same(held[name], copies[name])


# -- divergence: a clear error, finite and unchanged attributes -------------------


@pytest.mark.parametrize(
    "solver, dtype",
    [
        ("adam", np.float64),
        ("adam", np.float32),
        ("sgd", np.float64),  # finite weights of 1e305 before: silently wrong
        ("sgd", np.float32),
    ],
)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_huge_learning_rate_raises_and_leaves_the_model_unfitted(
    digits, solver, dtype, method
):
    model = NonnegativeSparseAutoencoder(**KW, solver=solver, learning_rate_init=1e308)
    with pytest.raises(ValueError, match="diverged.*Decrease learning_rate_init"):
        getattr(model, method)(digits.astype(dtype))
    assert vars(model) == vars(clone(model))
    with pytest.raises(NotFittedError, match="not fitted"):
        model.transform(digits)


@pytest.mark.parametrize(
    "params",
    [
        {"sparsity_weight": 1e308},
        {"nonnegativity": "asymmetric_decay", "decay_weight": 1e308},
    ],
    ids=["sparsity", "decay"],
)
def test_huge_penalty_raises_and_changes_nothing(digits, params):
    model = NonnegativeSparseAutoencoder(**KW, **params)
    with pytest.raises(ValueError, match="diverged.*penalty weights"):
        model.fit(digits)
    assert vars(model) == vars(clone(model))
    model = NonnegativeSparseAutoencoder(**KW).fit(digits)
    attributes = fitted_state(model)
    model.set_params(**params)
    with pytest.raises(ValueError, match="diverged.*penalty weights"):
        model.fit(digits)
    assert_same(fitted_state(model), attributes)
    for name in ("components_", "encoder_components_", "encoder_intercept_"):
        assert np.isfinite(getattr(model, name)).all()


def test_partial_fit_on_data_far_beyond_the_fitted_scale(digits):
    X1, X2 = digits[:150], digits[150:]
    reference = NonnegativeSparseAutoencoder(**KW).partial_fit(X1)
    model = NonnegativeSparseAutoencoder(**KW).partial_fit(X1)
    attributes, session = fitted_state(model), session_state(model)
    with pytest.raises(ValueError, match=r"1e\+200 times input_scale_=1.*scale X"):
        model.partial_fit(X2 * 1e200)
    assert_same(fitted_state(model), attributes)
    assert_same(session_state(model), session)
    assert np.isfinite(model.encoder_components_).all()
    reference.partial_fit(X2)
    model.partial_fit(X2)
    assert_same(fitted_state(model), fitted_state(reference))


def test_train_refuses_weights_thrown_out_of_range_by_the_last_step(digits):
    # The objective of an epoch is measured before each step, so the last
    # step of the last epoch can leave weights the objective never saw.
    X = torch.from_numpy(digits[:64])
    module = SparseAutoencoder(64, 4, dtype=X.dtype, device=X.device)
    initialize_autoencoder(module, X, "glorot_uniform", generator=make_generator(0))
    optimizer = make_optimizer(module, "adam", 1e-3)
    step, n_steps = optimizer.step, [0]

    def step_then_blow_up(*args, **kwargs):
        out = step(*args, **kwargs)
        n_steps[0] += 1
        if n_steps[0] == 2:  # the last of the epoch's two steps
            with torch.no_grad():
                module.encoder_weight[0, 0] = 1e200
        return out

    optimizer.step = step_then_blow_up
    with pytest.raises(FloatingPointError, match="weights left the range"):
        train(
            module, optimizer, Objective(), X, history=History(), max_iter=1,
            batch_size=32, generator=make_generator(0),
        )  # fmt: skip


# -- results do not depend on the scale of the data --------------------------------


@pytest.mark.parametrize("activation", ["sigmoid", "identity", "relu"])
@pytest.mark.parametrize("scale", [1e-20, 1e20])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_results_do_not_depend_on_the_scale(digits, activation, scale, dtype):
    X = digits.astype(dtype)
    base = NonnegativeSparseAutoencoder(**KW, decoder_activation=activation).fit(X)
    Xs = X * dtype(scale)
    model = NonnegativeSparseAutoencoder(**KW, decoder_activation=activation)
    model.fit(Xs)
    atol = 1e-12 if dtype == np.float64 else 1e-5
    codes = base.transform(X)
    # Guard: the codes of the unit-scale model are informative.
    assert codes.std(axis=0).min() > 1e-2
    assert model.input_scale_ == pytest.approx(scale, rel=1e-6)
    assert_allclose(model.transform(Xs), codes, atol=atol)
    assert_allclose(model.components_, base.components_, atol=atol)
    assert_allclose(model.loss_curve_, base.loss_curve_, rtol=1e-5)
    X_hat = model.inverse_transform(model.transform(Xs))
    assert_allclose(X_hat / scale, base.inverse_transform(codes), atol=10 * atol)
    assert model.reconstruction_err_ == pytest.approx(
        base.reconstruction_err_ * scale**2, rel=1e-5
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"early_stopping": True}, {"weight_init": "nmf"}],
    ids=["adam", "early_stopping", "nmf_init"],
)
def test_streamed_memmap_at_a_large_scale(digits, tmp_path, params):
    scale = 1e20
    X_map = np.lib.format.open_memmap(
        tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=digits.shape
    )
    X_map[:] = digits * scale
    X_map.flush()
    kw = {**KW, **params}
    base = NonnegativeSparseAutoencoder(**kw).fit(digits)
    on_map = NonnegativeSparseAutoencoder(**kw).fit(X_map)
    # The streamed rows are scaled as they are read: the mini-batches of the
    # unit-scale data (the mean row is summed in chunks, hence the atol).
    assert on_map.input_scale_ == scale
    assert_allclose(on_map.transform(X_map), base.transform(digits), atol=1e-9)
    assert_allclose(on_map.components_, base.components_, atol=1e-9)
    if not on_map.early_stopping:
        on_map.partial_fit(X_map)
        base.partial_fit(digits)
        assert_allclose(on_map.components_, base.components_, atol=1e-9)


def test_partial_fit_keeps_the_scale_of_its_first_call(digits):
    model = NonnegativeSparseAutoencoder(**KW).partial_fit(digits[:150] * 1e-20)
    model.partial_fit(digits[150:] * 1e-20)
    base = NonnegativeSparseAutoencoder(**KW).partial_fit(digits[:150])
    base.partial_fit(digits[150:])
    assert model.input_scale_ == pytest.approx(1e-20)
    assert_allclose(model.components_, base.components_, atol=1e-12)


# -- DataFrames: no feature-name warning per mini-batch -----------------------------


def test_dataframe_with_batch_size_warns_about_nothing(digits):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(digits[:100, :16], columns=[f"px{i}" for i in range(16)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = NonnegativeSparseAutoencoder(**KW).fit(df)  # 4 mini-batches
        model.partial_fit(df)
        model.transform(df)
        model.fit_transform(df)
        model.score(df)
        model.set_output(transform="pandas")
        model.score(df)
        model.inverse_transform(model.transform(df))


# -- what already holds, kept tested ---------------------------------------------


def _container(kind, X, tmp_path):
    if kind == "list":
        return X.tolist()
    if kind == "readonly":
        X = X.copy()
        X.setflags(write=False)
        return X
    if kind == "memmap":
        X_map = np.lib.format.open_memmap(
            tmp_path / "X.npy", mode="w+", dtype=X.dtype, shape=X.shape
        )
        X_map[:] = X
        X_map.flush()
        return np.load(tmp_path / "X.npy", mmap_mode="r+")
    if kind == "dataframe":
        pd = pytest.importorskip("pandas")
        return pd.DataFrame(X.copy())
    if kind == "sparse":
        return sp.csr_matrix(np.where(X > 1.5, X, 0.0))
    return X.copy()


def _content(X):
    if sp.issparse(X):
        return X.toarray()
    return np.array(X, dtype=np.float64, copy=True)


@pytest.mark.parametrize(
    "kind", ["array", "list", "readonly", "memmap", "dataframe", "sparse"]
)
def test_inputs_are_never_written(digits, tmp_path, kind):
    # Scaled by 3, so the model divides the data by its scale on the way in.
    X = _container(kind, digits[:100] * 3.0, tmp_path)
    expected = _content(X)
    model = NonnegativeSparseAutoencoder(**KW).fit(X)
    model.partial_fit(X)
    model.transform(X)
    model.score(X)
    model.set_params(warm_start=True).fit(X)
    NonnegativeSparseAutoencoder(**KW, solver="lbfgs").fit_transform(X)
    assert model.input_scale_ == pytest.approx(3.0)
    assert_array_equal(_content(X), expected)


def test_threads_restored_and_model_unfitted_when_fit_raises(digits, monkeypatch):
    # The NMF start runs HALS sweeps with one thread; an error inside them
    # must give the thread setting back and leave no half-fitted model.
    from skpart._core import _hals

    def broken(*args, **kwargs):
        raise RuntimeError("broken HALS sweep")

    monkeypatch.setattr(_hals, "_hals_slabs", broken)
    monkeypatch.setattr(_hals, "_hals_blocked", broken)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = NonnegativeSparseAutoencoder(**KW, weight_init="nmf")
        with pytest.raises(RuntimeError, match="broken HALS sweep"):
            model.fit(digits)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert vars(model) == vars(clone(model))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_error_is_clear_and_changes_nothing(digits):
    model = NonnegativeSparseAutoencoder(**KW, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        model.fit(digits)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.transform(digits)
    model = NonnegativeSparseAutoencoder(**KW).fit(digits)
    attributes = fitted_state(model)
    with pytest.raises(ValueError, match="CUDA is not available"):
        model.set_params(device="cuda").fit(digits)
    assert_same(fitted_state(model), attributes)


def test_pickle_round_trip_of_a_scaled_model(digits):
    X = digits * 1e20
    model = NonnegativeSparseAutoencoder(**KW).fit(X)
    loaded = pickle.loads(pickle.dumps(model))
    assert_same(fitted_state(loaded), fitted_state(model))
    assert_array_equal(loaded.transform(X), model.transform(X))
    codes = model.transform(X)
    assert_array_equal(loaded.inverse_transform(codes), model.inverse_transform(codes))
    # partial_fit after loading continues from the stored weights and scale.
    loaded.partial_fit(X)
    assert loaded.n_iter_ == model.n_iter_ + 1
    assert loaded.input_scale_ == model.input_scale_
