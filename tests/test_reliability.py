"""A failed call leaves the estimator as it was, and a fitted model never goes
silently wrong (SparseNMF and MultilayerNMF): bounded online atoms, calls that
commit only when they succeed, fitted arrays that are copies, data frames
streamed without warnings, results that do not depend on the data's scale."""

import contextlib
import copy
import io
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skpart import MultilayerNMF, SparseNMF
from skpart._core._online import (
    OnlineNMF,
    balance_atoms,
    update_atoms,
)
from skpart.utils._sklearn_compat import check_is_fitted

# Small online models: 3 to 5 mini-batches per call on the digits below.
ONLINE = {
    "SparseNMF": lambda **kw: SparseNMF(
        **{
            "n_components": 6,
            "batch_size": 40,
            "transform_max_iter": 50,
            "random_state": 0,
            **kw,
        }
    ),
    "SparseNMF-sparse-atoms": lambda **kw: SparseNMF(
        **{
            "n_components": 6,
            "batch_size": 40,
            "transform_max_iter": 50,
            "sparseness_components": 0.6,
            "random_state": 0,
            **kw,
        }
    ),
    "MultilayerNMF": lambda **kw: MultilayerNMF(
        **{
            "n_components": (8, 4),
            "batch_size": 40,
            "transform_max_iter": 50,
            "random_state": 0,
            **kw,
        }
    ),
}
# The same models fitted on all the data at once (few iterations).
FULL_BATCH = {
    "SparseNMF": lambda **kw: SparseNMF(
        **{"n_components": 6, "max_iter": 30, "random_state": 0, **kw}
    ),
    "MultilayerNMF": lambda **kw: MultilayerNMF(
        **{
            "n_components": (8, 4),
            "max_iter": 30,
            "fine_tune_iter": 5,
            "random_state": 0,
            **kw,
        }
    ),
}


@pytest.fixture(scope="module")
def X(digits):
    """600 digits in [0, 1], 64 features."""
    return digits[0][:600]


@pytest.fixture(autouse=True)
def _quiet_convergence():
    # Few iterations on purpose: the convergence warnings are not the point.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def state_of(model):
    """A deep copy of every attribute of ``model`` (the generator's state in
    place of the generator)."""
    state = {}
    for key, value in vars(model).items():
        if isinstance(value, torch.Generator):
            value = value.get_state()
        state[key] = copy.deepcopy(value)
    return state


def assert_same(a, b, where="model"):
    """``a`` and ``b`` (nested dicts, lists, arrays, tensors, numbers) are
    equal, arrays bitwise."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for idx, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{idx}]")
    elif isinstance(a, (np.ndarray, torch.Tensor)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)
    else:
        assert a == b or (a != a and b != b), where


def assert_state_unchanged(before, model):
    assert_same(before, state_of(model))


def spoil(A, value):
    """A copy of ``A`` with ``value`` in its last row (the last mini-batch)."""
    A = np.array(A)
    A[-1, 3] = value
    return A


class StepCounter:
    """Replaces ``_online_step`` of a class: counts the calls and raises
    ``exc`` at call ``raise_at`` (None: never)."""

    def __init__(self, cls, raise_at=None, exc=KeyboardInterrupt):
        self.original, self.raise_at, self.exc = cls._online_step, raise_at, exc
        self.calls = 0

    def __call__(self, estimator, states, batch, *, rho):
        self.calls += 1
        if self.calls == self.raise_at:
            raise self.exc()
        return self.original(estimator, states, batch, rho=rho)


def install(monkeypatch, model, **kw):
    counter = StepCounter(type(model), **kw)
    monkeypatch.setattr(
        type(model),
        "_online_step",
        lambda self, states, batch, *, rho: counter(self, states, batch, rho=rho),
    )
    return counter


def product_of_layers(model):
    out = model.layers_[0]
    for H in model.layers_[1:]:
        out = H @ out
    return out


# -- online atoms stay bounded; no NaN codes without an error -----------------
def test_online_atoms_stay_bounded_on_low_rank_data():
    # Rank-3 data, 8 components: five components have codes at the level of
    # rounding errors from the first step, and dividing by their ~1e-33
    # statistics grew their atoms to norm 1e60.
    rng = np.random.RandomState(0)
    X = rng.rand(300, 3) @ rng.rand(3, 20)
    model = SparseNMF(8, batch_size=32, max_iter=5, random_state=0).fit(X)
    assert np.linalg.norm(model.components_, axis=1).max() < 1e3
    codes = model.transform(X.astype(np.float32))
    assert np.all(np.isfinite(codes))
    rel = np.linalg.norm(X - codes @ model.components_) / np.linalg.norm(X)
    assert rel < 0.05


@pytest.mark.parametrize("n_samples, max_iter", [(500, 1), (300, 2)])
def test_multilayer_online_atoms_stay_bounded(digits, n_samples, max_iter):
    # The reproduction, smaller: 64 first-layer components on the 64
    # pixels of the digits (some always 0) reached norms of 1e80 and float32
    # codes were all NaN.
    X = digits[0][:n_samples]
    model = MultilayerNMF(
        (64, 32),
        batch_size=64,
        max_iter=max_iter,
        transform_max_iter=50,
        random_state=0,
    ).fit(X)
    for H in [*model.layers_, model.components_]:
        assert np.linalg.norm(H, axis=1).max() < 1e3
    codes = model.transform(X.astype(np.float32))
    assert np.all(np.isfinite(codes))
    rel = np.linalg.norm(X - codes @ model.components_) / np.linalg.norm(X)
    assert rel < 0.5


def test_sparse_nmf_online_atoms_stay_bounded_with_many_components(digits):
    # Variant with other data: 64 components for 64 pixels.
    X = digits[0][:600]
    model = SparseNMF(
        64, batch_size=64, max_iter=2, transform_max_iter=50, random_state=0
    ).fit(X)
    assert np.linalg.norm(model.components_, axis=1).max() < 1e3
    assert np.all(np.isfinite(model.transform(X.astype(np.float32))))


def test_vanishing_statistics_leave_the_atom_alone():
    # A component whose codes vanished (A[t, t] = 1e-90 A[0, 0], not exactly
    # 0) keeps its atom; the exact minimiser would divide by 1e-90.
    gen = torch.Generator().manual_seed(0)
    H = torch.rand(3, 5, generator=gen, dtype=torch.float64)
    W = torch.rand(10, 3, generator=gen, dtype=torch.float64)
    W[:, 2] = 1e-45 * torch.rand(10, generator=gen, dtype=torch.float64)
    X = W @ H + 0.01 * torch.rand(10, 5, generator=gen, dtype=torch.float64)
    state = OnlineNMF.start(H)
    update_atoms(state, W, X, rho=0.0)
    torch.testing.assert_close(state.H[2], H[2], rtol=0, atol=0)
    assert torch.isfinite(state.H).all()
    assert not torch.equal(state.H[:2], H[:2])


def test_balancing_keeps_the_atoms_objective():
    # Rescaling atoms and statistics together is exact: the objective of the
    # atoms, 0.5 tr(H^T A H) - tr(H^T B), is the same, and every atom's norm
    # is within a factor 2 of the root mean square of its codes.
    gen = torch.Generator().manual_seed(0)
    W = torch.rand(50, 4, generator=gen, dtype=torch.float64)
    W[:, 1] *= 1e-3  # a weakly used component: a large atom
    H = torch.rand(4, 7, generator=gen, dtype=torch.float64)
    H[1] *= 1e3
    A, B = W.mT @ W / 50, W.mT @ (W @ H) / 50
    state = OnlineNMF(H.clone(), A.clone(), B.clone(), 50.0)
    before = _atoms_objective(state)
    assert float(torch.linalg.vector_norm(state.H[1])) > 1e2
    balance_atoms(state)
    assert _atoms_objective(state) == pytest.approx(before, rel=1e-12)
    ratio = torch.linalg.vector_norm(state.H, dim=1) / torch.diagonal(state.A).sqrt()
    assert float(ratio.max()) <= 2.0 and float(ratio.min()) >= 0.5


def _atoms_objective(state):
    """``0.5 tr(H^T A H) - tr(H^T B)`` of an online state."""
    H, A, B = state.H, state.A, state.B
    return float(0.5 * (H * (A @ H)).sum() - (H * B).sum())


@pytest.mark.parametrize("name", list(FULL_BATCH))
def test_transform_that_overflows_raises(name, X, monkeypatch):
    # Atoms of norm 1e31 (a model whose atoms blew up) overflow in float32:
    # the codes were silently all NaN. (Small float32 data is encoded in
    # float64, where they do not overflow: work in float32 here.)
    monkeypatch.setattr("skpart._estimators._nmf_base.SMALL_DATA", 0)
    model = FULL_BATCH[name]().fit(X)
    model.components_ = model.components_ * 1e30
    with pytest.raises(ValueError, match="computed non-finite codes"):
        model.transform(X.astype(np.float32))


class Overflowing:
    """Wraps a core function so that the factors it returns are infinite."""

    def __init__(self, function):
        self.function = function

    def __call__(self, *args, **kwargs):
        out = list(self.function(*args, **kwargs))
        factors = out[1]
        out[1] = (
            [F * np.inf for F in factors]
            if isinstance(factors, list)
            else factors * np.inf
        )
        return tuple(out)


@pytest.mark.parametrize(
    "name, target",
    [
        ("SparseNMF", "skpart._estimators._sparse_nmf.fit_nmf"),
        ("MultilayerNMF", "skpart._estimators._multilayer_nmf.fine_tune"),
    ],
)
def test_fit_with_non_finite_atoms_raises_and_keeps_the_model(
    name, target, X, monkeypatch
):
    model = FULL_BATCH[name]().fit(X[:200])
    before = state_of(model)
    module, function = target.rsplit(".", 1)
    original = getattr(__import__(module, fromlist=[function]), function)
    monkeypatch.setattr(target, Overflowing(original))
    with pytest.raises(ValueError, match="did not give finite components_"):
        model.fit(X[200:400])
    assert_state_unchanged(before, model)


# -- a failed call leaves the estimator as it was ------------------------------
@pytest.mark.parametrize("name", list(ONLINE))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
@pytest.mark.parametrize("container", ["array", "memmap"])
def test_partial_fit_refuses_a_bad_chunk_before_any_step(
    name, bad, container, X, tmp_path, monkeypatch
):
    model = ONLINE[name]().partial_fit(X[:200])
    before = state_of(model)
    chunk = spoil(X[200:400], bad)  # the bad value is in the last mini-batch
    if container == "memmap":
        path = tmp_path / "chunk.dat"
        out = np.memmap(path, dtype=chunk.dtype, mode="w+", shape=chunk.shape)
        out[:] = chunk
        out.flush()
        chunk = np.memmap(path, dtype=chunk.dtype, mode="r", shape=chunk.shape)
    counter = install(monkeypatch, model)
    with pytest.raises(ValueError, match="NaN|infinity|Negative values"):
        model.partial_fit(chunk)
    assert counter.calls == 0
    monkeypatch.undo()
    assert_state_unchanged(before, model)
    # The stream goes on as if the failed call had not been made.
    model.partial_fit(X[400:600])
    reference = ONLINE[name]().partial_fit(X[:200]).partial_fit(X[400:600])
    np.testing.assert_array_equal(model.components_, reference.components_)


@pytest.mark.parametrize("name", list(ONLINE))
@pytest.mark.parametrize("call", ["partial_fit", "fit"])
def test_interrupted_online_call_leaves_the_model(name, call, X, monkeypatch):
    model = ONLINE[name](shuffle=True) if name == "SparseNMF" else ONLINE[name]()
    model.partial_fit(X[:200])
    before = state_of(model)
    counter = install(monkeypatch, model, raise_at=3)
    with pytest.raises(KeyboardInterrupt):
        getattr(model, call)(X[200:400])
    assert counter.calls == 3
    monkeypatch.undo()
    assert_state_unchanged(before, model)
    if name == "MultilayerNMF":
        np.testing.assert_allclose(model.components_, product_of_layers(model))
    model.partial_fit(X[400:600])
    reference = type(model)(**model.get_params()).partial_fit(X[:200])
    reference.partial_fit(X[400:600])
    np.testing.assert_array_equal(model.components_, reference.components_)


@pytest.mark.parametrize(
    "name, target",
    [
        ("SparseNMF", "skpart._estimators._sparse_nmf.fit_nmf"),
        ("MultilayerNMF", "skpart._estimators._multilayer_nmf.fine_tune"),
    ],
)
@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_full_batch_fit_leaves_the_model(name, target, exc, X, monkeypatch):
    model = FULL_BATCH[name]().fit(X[:300])
    before = state_of(model)

    def broken(*args, **kwargs):
        raise exc("interrupted")

    monkeypatch.setattr(target, broken)
    with pytest.raises(exc, match="interrupted"):
        model.fit_transform(X[300:, :60])  # narrower data: a refit
    assert_state_unchanged(before, model)
    fresh = FULL_BATCH[name]()
    with pytest.raises(exc, match="interrupted"):
        fresh.fit(X)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        check_is_fitted(fresh)
    assert set(vars(fresh)) == set(vars(FULL_BATCH[name]()))


@pytest.mark.parametrize("name", list(ONLINE))
def test_failed_online_fit_leaves_an_unfitted_model(name, X):
    model = ONLINE[name]()
    with pytest.raises(ValueError, match="NaN"):
        model.fit(spoil(X[:200], np.nan))
    assert set(vars(model)) == set(vars(ONLINE[name]()))
    assert not hasattr(model, "n_features_in_")
    assert not hasattr(model, "n_steps_")
    with pytest.raises(NotFittedError, match="not fitted yet"):
        model.transform(X[:5])


@pytest.mark.parametrize("name", list(FULL_BATCH))
def test_failed_online_refit_on_wider_data_keeps_the_model(name, X):
    model = FULL_BATCH[name](batch_size=40, max_iter=2).fit(X[:200])
    codes = model.transform(X[:20])
    wider = spoil(np.hstack([X[200:400], X[200:400, :6]]), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(wider)
    assert model.n_features_in_ == model.components_.shape[1] == 64
    np.testing.assert_array_equal(model.transform(X[:20]), codes)


@pytest.mark.parametrize("name", list(FULL_BATCH))
def test_full_batch_refit_drops_the_online_step_count(name, X):
    model = FULL_BATCH[name](batch_size=100, max_iter=2, tol=0).fit(X[:200])
    assert model.n_steps_ == 4
    model.set_params(batch_size=None).fit(X[:200])
    assert not hasattr(model, "n_steps_")
    model.partial_fit(X[200:300])  # continues the full-batch model: one step
    assert model.n_steps_ == 1


# -- fitted arrays are copies ----------------------------------------------------
def _held_arrays(model):
    """The fitted arrays a user can hold, by name."""
    held = {"components_": model.components_}
    for idx, H in enumerate(getattr(model, "layers_", [])):
        held[f"layers_[{idx}]"] = H
    saved = model._online_state
    for idx, entry in enumerate(saved if isinstance(saved, list) else [saved]):
        for key in ("A", "B", "step"):
            if entry is not None and entry[key] is not None:
                held[f"_online_state[{idx}][{key}]"] = entry[key]
    return held


@pytest.mark.parametrize("name", list(ONLINE))
@pytest.mark.parametrize("first", ["partial_fit", "fit"])
def test_fitted_arrays_never_change_under_the_user(name, first, X):
    model = ONLINE[name](max_iter=1)
    getattr(model, first)(X[:200])
    held = _held_arrays(model)
    copies = {key: value.copy() for key, value in held.items()}
    model.partial_fit(X[200:400])
    for key, value in held.items():
        np.testing.assert_array_equal(value, copies[key], err_msg=key)
    assert not np.array_equal(model.components_, copies["components_"])


# -- data frames ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FULL_BATCH))
def test_data_frame_with_batch_size_warns_nothing(name, X):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X[:200], columns=[f"px{i}" for i in range(64)])
    model = FULL_BATCH[name](batch_size=40, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(df)
        model.partial_fit(df)
        codes = model.transform(df)
        model.fit_transform(df)
    assert codes.shape == (200, model.n_components_)
    np.testing.assert_array_equal(model.feature_names_in_, df.columns)


# -- scale -----------------------------------------------------------------------
SCALE_CASES = {
    "cd": {},
    "mu": {"solver": "mu"},
    "kullback-leibler": {"solver": "mu", "beta_loss": "kullback-leibler"},
    "sparse atoms": {"sparseness_components": 0.6},
    "sparse codes": {"sparseness_codes": 0.6},
    "l1 penalties": {"alpha_W": 1e-3, "l1_ratio": 1.0},
    "l2 penalties": {"alpha_W": 1e-2, "l1_ratio": 0.0},
}


@pytest.fixture(scope="module")
def X32(digits):
    """300 digits in [0, 1] as float32 (largest entry exactly 1)."""
    return digits[0][:300].astype(np.float32)


@pytest.mark.parametrize("case", list(SCALE_CASES))
@pytest.mark.parametrize("power", [33, -33])
def test_fit_at_a_power_of_4_scale_is_the_scaled_fit(case, power, X32, monkeypatch):
    # 4 ** 33 is about 7e19: X * c is fitted as X, exactly, and scaled back
    # (the factors by sqrt(c), the Frobenius error by c, sqrt(2 KL) by
    # sqrt(c)). The penalties keep the meaning the docstring gives them: the
    # objective of c X at (sqrt(c) W, sqrt(c) H) is c ** 2 times that of X at
    # (W, H) when the L1 penalties are multiplied by c ** 1.5 and the L2
    # penalties by c, and then the fit of c X is that of X, scaled.
    # The fits work in float32, where the scale matters (small float32 data
    # is otherwise fitted in float64 and its tiniest atoms entries would be
    # float32 subnormals in the reference only).
    monkeypatch.setattr("skpart._estimators._nmf_base.SMALL_DATA", 0)
    c = 4.0**power
    params = dict(n_components=6, max_iter=40, random_state=0, **SCALE_CASES[case])
    reference = SparseNMF(**params)
    codes = reference.fit_transform(X32)
    if case == "l1 penalties":
        params["alpha_W"] *= c**1.5
    elif case == "l2 penalties":
        params["alpha_W"] *= c
    scaled = SparseNMF(**params)
    scaled_codes = scaled.fit_transform(X32 * np.float32(c))
    root = 2.0**power
    np.testing.assert_array_equal(scaled.components_, reference.components_ * root)
    np.testing.assert_array_equal(scaled_codes, codes * root)
    np.testing.assert_array_equal(scaled.transform(X32 * np.float32(c)), codes * root)
    exponent = 0.5 if case == "kullback-leibler" else 1.0
    assert scaled.reconstruction_err_ == pytest.approx(
        reference.reconstruction_err_ * c**exponent, rel=1e-12
    )
    assert np.linalg.norm(reference.components_) > 0.1  # not a trivial fit


@pytest.mark.parametrize("case", ["cd", "mu", "sparse atoms", "sparse codes"])
@pytest.mark.parametrize("scale", [1e20, 1e-20])
def test_fit_of_float32_data_near_1e20_and_1e_minus_20(case, scale, X32):
    params = dict(n_components=6, max_iter=40, random_state=0, **SCALE_CASES[case])

    def relative_error(data):
        model = SparseNMF(**params)
        codes = model.fit_transform(data)
        assert np.all(np.isfinite(codes)) and np.all(np.isfinite(model.components_))
        assert np.isfinite(model.reconstruction_err_)
        rebuilt = codes.astype(np.float64) @ model.components_.astype(np.float64)
        data = data.astype(np.float64)
        return np.linalg.norm(data - rebuilt) / np.linalg.norm(data)

    expected = relative_error(X32)
    assert relative_error(X32 * np.float32(scale)) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("power", [33, -33])
def test_online_fit_at_a_power_of_4_scale_is_the_scaled_fit(power, X32):
    c, root = 4.0**power, 2.0**power
    for make in (ONLINE["SparseNMF"], ONLINE["MultilayerNMF"]):
        reference = make(max_iter=2).fit(X32)
        scaled = make(max_iter=2).fit(X32 * np.float32(c))
        np.testing.assert_array_equal(scaled.components_, reference.components_ * root)
        assert scaled.reconstruction_err_ == pytest.approx(
            reference.reconstruction_err_ * c, rel=1e-12
        )
        reference.partial_fit(X32[:100])
        scaled.partial_fit(X32[:100] * np.float32(c))
        np.testing.assert_array_equal(scaled.components_, reference.components_ * root)
        np.testing.assert_array_equal(
            scaled.transform(X32 * np.float32(c)), reference.transform(X32) * root
        )


@pytest.mark.parametrize("power", [33, -33])
def test_multilayer_fit_at_a_power_of_4_scale_is_the_scaled_fit(power, X32):
    c, root = 4.0**power, 2.0**power
    reference = FULL_BATCH["MultilayerNMF"]().fit(X32)
    scaled = FULL_BATCH["MultilayerNMF"]().fit(X32 * np.float32(c))
    np.testing.assert_array_equal(scaled.components_, reference.components_ * root)
    np.testing.assert_array_equal(scaled.layers_[0], reference.layers_[0] * root)
    np.testing.assert_array_equal(scaled.layers_[1], reference.layers_[1])
    np.testing.assert_allclose(
        scaled.loss_curve_, np.multiply(reference.loss_curve_, c**2), rtol=1e-12
    )
    layers = scaled.transform_layers(X32 * np.float32(c))
    for got, expected in zip(layers, reference.transform_layers(X32)):
        np.testing.assert_array_equal(got, expected * root)


# -- verbose output and the convergence warning ---------------------------------
@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_converged_fit_does_not_warn_about_max_iter(solver, X):
    params = dict(n_components=10, solver=solver, tol=1e-2, random_state=0)
    n_iter = SparseNMF(**params).fit(X[:300]).n_iter_
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with contextlib.redirect_stdout(out):
            model = SparseNMF(max_iter=n_iter, verbose=1, **params).fit(X[:300])
    assert model.n_iter_ == n_iter
    if solver == "cd":
        assert f"Converged at iteration {n_iter}" in out.getvalue()
    # One iteration fewer: the cap stops the fit, and the warning says so.
    with pytest.warns(ConvergenceWarning, match=f"iterations {n_iter - 1} reached"):
        SparseNMF(max_iter=n_iter - 1, **params).fit(X[:300])


def test_converged_layer_does_not_warn_about_max_iter(X):
    # The first layer's cap set to the iterations its stopping rule needs:
    # MultilayerNMF says the layer converged and does not warn.
    params = dict(n_components=(10, 4), tol=1e-2, fine_tune_iter=0, random_state=0)
    n_iter = MultilayerNMF(**params).fit(X[:300]).n_iter_layers_[0]
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with contextlib.redirect_stdout(out):
            MultilayerNMF(max_iter=n_iter, verbose=1, **params).fit(X[:300])
    assert f"Converged at iteration {n_iter}" in out.getvalue()
    with pytest.warns(ConvergenceWarning, match="reached in layer 1"):
        MultilayerNMF(max_iter=n_iter - 1, **params).fit(X[:300])


# -- what already holds, kept tested -----------------------------------------------
def _containers(X, tmp_path):
    read_only = X.copy()
    read_only.flags.writeable = False
    path = tmp_path / "X.dat"
    out = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    out[:] = X
    out.flush()
    memmap = np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)
    return {
        "array": X.copy(),
        "read-only": read_only,
        "memmap": memmap,
        "csr": sp.csr_matrix(X),
        "list": X.tolist(),
        "large array": X * 4.0**20,  # fitted rescaled
    }


def _snapshot(data):
    if sp.issparse(data):
        return [data.data.copy(), data.indices.copy(), data.indptr.copy()]
    return copy.deepcopy(data) if isinstance(data, list) else np.array(data)


@pytest.mark.parametrize("name", list(FULL_BATCH))
@pytest.mark.parametrize("batch_size", [None, 50])
def test_inputs_are_never_written(name, batch_size, X, tmp_path):
    for kind, data in _containers(X[:150], tmp_path).items():
        before = _snapshot(data)
        model = FULL_BATCH[name](batch_size=batch_size, max_iter=3)
        model.fit(data)
        model.partial_fit(data)
        model.transform(data)
        model.fit_transform(data)
        after = _snapshot(data)
        if isinstance(before, list) and not sp.issparse(data):
            assert before == after, kind
        else:
            assert_same(before, after, kind)


def test_thread_setting_restored_when_fit_raises(X, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("sweep failed")

    monkeypatch.setattr("skpart._core._hals._hals_slabs", broken)
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = SparseNMF(4, max_iter=5, random_state=0)
        with pytest.raises(RuntimeError, match="sweep failed"):
            model.fit(X[:50])
        assert torch.get_num_threads() == 2
        assert not hasattr(model, "n_features_in_")
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("name", list(FULL_BATCH))
def test_device_errors_are_clear(name, X):
    with pytest.raises(ValueError, match="Invalid device='tpu'"):
        FULL_BATCH[name](device="tpu").fit(X[:50])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            FULL_BATCH[name](device="cuda").fit(X[:50])


@pytest.mark.parametrize("name", list(ONLINE))
def test_pickled_model_continues_the_same(name, X32):
    # At an extreme scale, so that the data scale travels in the pickle too.
    data = X32 * np.float32(4.0**30)
    model = ONLINE[name]().partial_fit(data[:200])
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.transform(data), model.transform(data))
    model.partial_fit(data[200:])
    clone.partial_fit(data[200:])
    np.testing.assert_array_equal(clone.components_, model.components_)
