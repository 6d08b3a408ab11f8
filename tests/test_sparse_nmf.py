"""Tests of SparseNMF and its torch core: sklearn equivalence, constraints, codes."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skpart import SparseNMF
from skpart._core._beta import beta_divergence, divergence_rows
from skpart._core._hoyer import cone_project, pg_steps
from skpart._core._nmf import fit_nmf
from skpart._core._operator import DataOperator
from skpart.metrics import hoyer_sparsity


def _hoyer_rows(A):
    """Hoyer sparseness of every row of ``A`` (float64)."""
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[1]
    ratio = np.abs(A).sum(1) / np.sqrt((A * A).sum(1))
    return (np.sqrt(n) - ratio) / (np.sqrt(n) - 1)


@pytest.fixture
def X_lowrank(rng):
    """60 x 20 non-negative data of rank about 5, with noise."""
    return rng.rand(60, 5) @ rng.rand(5, 20) + 0.05 * rng.rand(60, 20)


# -- equivalence with scikit-learn --------------------------------------------
@pytest.mark.parametrize("solver", ["cd", "mu"])
@pytest.mark.parametrize("sparse_input", [False, True])
def test_same_error_as_sklearn(X_lowrank, solver, sparse_input):
    X = sp.csr_matrix(X_lowrank) if sparse_input else X_lowrank
    kw = dict(n_components=5, init="nndsvda", solver=solver, max_iter=100, tol=0)
    sk = NMF(random_state=0, **kw).fit(X)
    ours = SparseNMF(random_state=0, **kw).fit(X)
    # Guard against a trivial solution before comparing.
    assert sk.reconstruction_err_ < 0.5 * np.linalg.norm(X_lowrank)
    if solver == "mu":
        # Same updates: the same error.
        assert ours.reconstruction_err_ == pytest.approx(
            sk.reconstruction_err_, rel=0.01
        )
        return
    # HALS with extrapolation gets further in the same iterations (that is the
    # speed-up): at least as low an error as sklearn's, and within 1% of the
    # error sklearn's coordinate descent reaches when run to convergence.
    assert ours.reconstruction_err_ <= sk.reconstruction_err_ * 1.01
    kw.update(max_iter=5000, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk_converged = NMF(random_state=0, **kw).fit(X)
    assert ours.reconstruction_err_ == pytest.approx(
        sk_converged.reconstruction_err_, rel=0.01
    )


@pytest.mark.slow
@pytest.mark.parametrize("n_components", [16, 32])
def test_default_settings_do_as_well_as_sklearn(digits, n_components):
    # The drop-in promise at the default tol and max_iter: SparseNMF stops
    # sooner than scikit-learn's coordinate descent, at an error at least as
    # low (to 0.5%). Stopping on scikit-learn's violation test alone ended the
    # 32-component fit at iteration 30 with an error 14% above sklearn's.
    X = digits[0] * 16.0  # the raw pixel counts of load_digits
    kw = dict(n_components=n_components, init="nndsvda", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = NMF(**kw).fit(X)
        ours = SparseNMF(**kw).fit(X)
    assert ours.n_iter_ < sk.n_iter_
    assert ours.reconstruction_err_ <= sk.reconstruction_err_ * 1.005


@pytest.mark.parametrize("beta_loss", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
def test_mu_iterates_match_sklearn(X_lowrank, beta_loss):
    # Same start, same multiplicative updates: the same factors, every beta.
    from sklearn.decomposition._nmf import _initialize_nmf

    X = X_lowrank + 0.1
    W0, H0 = _initialize_nmf(X, 4, init="nndsvda", random_state=0)
    kw = dict(n_components=4, init="custom", solver="mu", max_iter=30, tol=0)
    kw["beta_loss"] = beta_loss
    sk = NMF(**kw).fit(X, W=W0.copy(), H=H0.copy())
    ours = SparseNMF(**kw).fit(X, W=W0.copy(), H=H0.copy())
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-6)
    assert ours.reconstruction_err_ == pytest.approx(sk.reconstruction_err_, rel=1e-8)


def test_cd_fixed_point_matches_sklearn(X_lowrank):
    # HALS and sklearn's coordinate descent share their fixed points.
    kw = dict(n_components=4, init="nndsvda", random_state=0, tol=1e-8)
    kw["max_iter"] = 2000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = NMF(**kw).fit(X_lowrank)
        ours = SparseNMF(**kw).fit(X_lowrank)
    assert ours.reconstruction_err_ == pytest.approx(sk.reconstruction_err_, rel=1e-3)


@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_regularization_matches_sklearn(X_lowrank, solver):
    a_W, a_H, ratio = 0.01, 0.02, 0.5
    kw = dict(n_components=4, init="nndsvda", solver=solver, max_iter=200, tol=0)
    kw.update(alpha_W=a_W, alpha_H=a_H, l1_ratio=ratio)
    n, m = X_lowrank.shape

    def objective(W, H):
        # sklearn's penalised objective, scaling written out.
        return (
            0.5 * np.sum((X_lowrank - W @ H) ** 2)
            + a_W * ratio * m * W.sum()
            + a_H * ratio * n * H.sum()
            + 0.5 * a_W * (1 - ratio) * m * (W**2).sum()
            + 0.5 * a_H * (1 - ratio) * n * (H**2).sum()
        )

    sk = NMF(random_state=0, **kw)
    ours = SparseNMF(random_state=0, **kw)
    f_sk = objective(sk.fit_transform(X_lowrank), sk.components_)
    f_ours = objective(ours.fit_transform(X_lowrank), ours.components_)
    assert f_sk < 0.5 * np.sum(X_lowrank**2)
    assert f_ours == pytest.approx(f_sk, rel=0.01)


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_beta_divergence_of_sparse_equals_dense(rng, beta):
    # Sparse X with beta=2 goes through Gram matrices (never W H); the value
    # is the dense one to rounding.
    X = sp.random(40, 30, density=0.2, random_state=0, format="csr")
    W = torch.from_numpy(rng.rand(40, 4) + 0.1)
    H = torch.from_numpy(rng.rand(4, 30) + 0.1)
    Xs = torch.sparse_csr_tensor(
        torch.from_numpy(X.indptr.astype(np.int64)),
        torch.from_numpy(X.indices.astype(np.int64)),
        torch.from_numpy(X.data),
        size=X.shape,
    )
    dense = float(beta_divergence(torch.from_numpy(X.toarray()), W, H, beta))
    assert dense > 1.0
    assert float(beta_divergence(Xs, W, H, beta)) == pytest.approx(dense, rel=1e-12)


# -- the objective goes down ---------------------------------------------------
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
def test_mu_decreases_every_beta_loss(rng, beta):
    X = torch.from_numpy(rng.rand(30, 12) + 0.1)
    W = torch.from_numpy(rng.rand(30, 3) + 0.1)
    H = torch.from_numpy(rng.rand(3, 12) + 0.1)
    op = DataOperator(X)

    def loss(W, H):
        # The beta divergence written out, independently of the core.
        Y = (W @ H).numpy()
        Xn = X.numpy()
        if beta == 0:
            return np.sum(Xn / Y - np.log(Xn / Y) - 1)
        if beta == 1:
            return np.sum(Xn * np.log(Xn / Y) - Xn + Y)
        return np.sum(
            (Xn**beta + (beta - 1) * Y**beta - beta * Xn * Y ** (beta - 1))
            / (beta * (beta - 1))
        )

    previous = loss(W, H)
    assert float(divergence_rows(op, W, H, beta).sum()) == pytest.approx(
        previous, rel=1e-10
    )
    for _ in range(20):
        W, H, _, _ = fit_nmf(X, W, H, solver="mu", beta_loss=beta, max_iter=1, tol=0)
        current = loss(W, H)
        assert current <= previous * (1 + 1e-12)
        previous = current


@pytest.mark.parametrize(
    "sparseness", [{}, {"sparseness_H": 0.6}, {"sparseness_W": 0.5}]
)
def test_cd_decreases_frobenius(X_lowrank, sparseness):
    X = torch.from_numpy(X_lowrank)
    rng = np.random.RandomState(1)
    W = torch.from_numpy(rng.rand(60, 4))
    H = torch.from_numpy(rng.rand(4, 20))
    previous = np.inf
    for _ in range(15):
        W, H, _, _ = fit_nmf(X, W, H, max_iter=1, tol=0, **sparseness)
        current = 0.5 * np.sum((X_lowrank - (W @ H).numpy()) ** 2)
        assert current <= previous * (1 + 1e-12)
        previous = current


# -- constraints ---------------------------------------------------------------
def test_atoms_projected_gradient_is_exact_for_a_diagonal_gram(rng):
    # With a diagonal Gram matrix the atoms' problems separate, and the first
    # preconditioned step (size 1) lands every atom on the minimiser of its own
    # quadratic over the sparseness cone: the projection of B_i / G_ii.
    G = torch.diag(torch.from_numpy(rng.rand(5) + 0.5))
    B = torch.from_numpy(rng.rand(5, 30))
    U0 = cone_project(torch.from_numpy(rng.rand(5, 30)), 0.7)
    U, step, obj = pg_steps(U0, G, B, 0.7, None, 1, per_row=False)
    expected = cone_project(B / torch.diagonal(G)[:, None], 0.7)
    torch.testing.assert_close(U, expected, rtol=1e-10, atol=1e-12)
    assert float(step) == pytest.approx(1.2)
    # More steps never increase the objective, on a coupled Gram matrix too.
    M = torch.from_numpy(rng.rand(8, 5))
    G = M.T @ M
    U, previous = U0, np.inf
    for _ in range(10):
        U, step, obj = pg_steps(U, G, B, 0.7, None, 1, per_row=False)
        assert float(obj) <= previous + 1e-12
        previous = float(obj)
    np.testing.assert_allclose(_hoyer_rows(U.numpy()), 0.7, atol=1e-6)


@pytest.mark.parametrize("solver", ["cd", "mu"])
@pytest.mark.parametrize("s_atoms, s_codes", [(0.7, None), (None, 0.5), (0.6, 0.4)])
def test_exact_sparseness(X_lowrank, solver, s_atoms, s_codes):
    model = SparseNMF(
        n_components=6,
        solver=solver,
        sparseness_components=s_atoms,
        sparseness_codes=s_codes,
        random_state=0,
        max_iter=50,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        W = model.fit_transform(X_lowrank)
    W2 = model.transform(X_lowrank[:9])
    if s_atoms is not None:
        np.testing.assert_allclose(_hoyer_rows(model.components_), s_atoms, atol=1e-4)
    if s_codes is not None:
        np.testing.assert_allclose(_hoyer_rows(W), s_codes, atol=1e-4)
        np.testing.assert_allclose(_hoyer_rows(W2), s_codes, atol=1e-4)
    # Not a trivial solution.
    assert model.reconstruction_err_ < 0.5 * np.linalg.norm(X_lowrank)


@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvda", "nndsvdar"])
@pytest.mark.parametrize("solver", ["cd", "mu"])
@pytest.mark.parametrize("s", [None, 0.5])
def test_non_negative(X_small, init, solver, s):
    model = SparseNMF(
        3,
        init=init,
        solver=solver,
        sparseness_components=s,
        sparseness_codes=s,
        random_state=0,
        max_iter=20,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning))
        W = model.fit_transform(X_small)
    assert (W >= 0).all() and (model.components_ >= 0).all()
    assert np.isfinite(W).all() and W.max() > 0


def test_planted_factorisation_is_recovered(rng):
    W = rng.rand(80, 4)
    H = rng.rand(4, 15)
    X = W @ H
    model = SparseNMF(4, init="nndsvda", tol=1e-10, max_iter=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    assert model.reconstruction_err_ < 1e-3 * np.linalg.norm(X)


# -- codes ---------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["cd", "mu"])
@pytest.mark.parametrize("s_codes", [None, 0.5])
def test_transform_is_batch_independent(X_lowrank, solver, s_codes):
    model = SparseNMF(5, solver=solver, sparseness_codes=s_codes, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_lowrank)
    full = model.transform(X_lowrank)
    np.testing.assert_allclose(full[:7], model.transform(X_lowrank[:7]), rtol=1e-6)
    np.testing.assert_allclose(full[3], model.transform(X_lowrank[3:4])[0], rtol=1e-6)


def test_codes_do_not_depend_on_the_density_of_the_batch(rng):
    # Sparse rows alone and among dense ones: the same codes. (The HALS
    # sweeps of the codes were once sized by the batch's non-zeros: 2 sweeps
    # with the dense rows, 1 without, 8.8e-7 apart.)
    X = rng.rand(200, 60)
    X[:100] *= rng.rand(100, 60) < 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SparseNMF(2, random_state=0, max_iter=50).fit(X)
    # (to rounding: the products of a smaller batch are blocked otherwise)
    np.testing.assert_allclose(
        model.transform(X[:7]), model.transform(X)[:7], rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("s_codes", [None, 0.5])
def test_fit_transform_equals_fit_then_transform(X_lowrank, s_codes):
    kw = dict(n_components=5, sparseness_codes=s_codes, random_state=0, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        W = SparseNMF(**kw).fit_transform(X_lowrank)
        W2 = SparseNMF(**kw).fit(X_lowrank).transform(X_lowrank)
    np.testing.assert_array_equal(W, W2)


def test_sparse_input_equals_dense(X_lowrank):
    X = X_lowrank.copy()
    X[X < 0.8] = 0
    kw = dict(n_components=4, random_state=0, max_iter=30, sparseness_components=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = SparseNMF(**kw).fit(X)
        sparse = SparseNMF(**kw).fit(sp.csr_matrix(X))
    np.testing.assert_allclose(sparse.components_, dense.components_, rtol=1e-6)
    np.testing.assert_allclose(
        sparse.transform(sp.csc_matrix(X)), dense.transform(X), rtol=1e-6, atol=1e-10
    )


def test_float32_follows_and_agrees_with_float64(X_lowrank):
    kw = dict(n_components=4, random_state=0, max_iter=100, tol=0)
    m64 = SparseNMF(**kw).fit(X_lowrank)
    m32 = SparseNMF(**kw).fit(X_lowrank.astype(np.float32))
    assert m32.components_.dtype == np.float32
    assert m32.transform(X_lowrank.astype(np.float32)).dtype == np.float32
    assert m64.transform(X_lowrank).dtype == np.float64
    assert m32.reconstruction_err_ == pytest.approx(m64.reconstruction_err_, rel=1e-3)


@pytest.mark.parametrize("sparseness_codes", [None, 0.5])
def test_transform_of_other_dtype_follows_the_input(X_lowrank, sparseness_codes):
    # A float32 fit transforms float64 data (and back): the codes take the
    # input's dtype and agree with the codes of the same data in the fit's
    # dtype's error. (sklearn's NMF raises a TypeError here.)
    X32 = X_lowrank.astype(np.float32)
    kw = dict(n_components=4, random_state=0, max_iter=100)
    m32 = SparseNMF(sparseness_codes=sparseness_codes, **kw).fit(X32)
    codes64 = m32.transform(X_lowrank)
    assert codes64.dtype == np.float64
    atoms = m32.components_.astype(np.float64)
    err64 = np.linalg.norm(X_lowrank - codes64 @ atoms)
    err32 = np.linalg.norm(X_lowrank - m32.transform(X32).astype(np.float64) @ atoms)
    assert err64 == pytest.approx(err32, rel=1e-3)
    m64 = SparseNMF(sparseness_codes=sparseness_codes, **kw).fit(X_lowrank)
    assert m64.transform(X32).dtype == np.float32


def test_deterministic(X_lowrank):
    kw = dict(n_components=5, init="random", shuffle=True, random_state=3)
    kw.update(sparseness_components=0.5, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = SparseNMF(**kw).fit_transform(X_lowrank)
        b = SparseNMF(**kw).fit_transform(X_lowrank)
    np.testing.assert_array_equal(a, b)


def test_attributes_and_api(X_lowrank):
    model = SparseNMF(3, random_state=0, max_iter=500)
    out = model.fit_transform(X_lowrank)
    names = ["nmf0", "nmf1", "nmf2"]  # scikit-learn's NMF names
    assert list(model.get_feature_names_out()) == names
    assert model.n_components_ == 3 and model.n_features_in_ == 20
    assert not hasattr(model, "feature_names_in_")
    assert 0 < model.n_iter_ <= 500
    rebuilt = model.inverse_transform(out)
    assert rebuilt.shape == X_lowrank.shape
    assert np.linalg.norm(rebuilt - X_lowrank) == pytest.approx(
        model.reconstruction_err_, rel=0.05
    )


def test_set_output_pandas(X_lowrank):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X_lowrank, columns=[f"f{i}" for i in range(20)])
    model = SparseNMF(3, random_state=0, max_iter=500).set_output(transform="pandas")
    out = model.fit_transform(df)
    assert list(out.columns) == ["nmf0", "nmf1", "nmf2"]
    assert list(model.feature_names_in_) == list(df.columns)


def test_auto_n_components_from_custom_init(X_lowrank, rng):
    W0, H0 = rng.rand(60, 7), rng.rand(7, 20)
    model = SparseNMF(init="custom", max_iter=5, tol=0).fit(X_lowrank, W=W0, H=H0)
    assert model.n_components_ == 7
    assert SparseNMF(max_iter=5, tol=0).fit(X_lowrank).n_components_ == 20


def test_hoyer_sparsity_metric_agrees(X_lowrank):
    model = SparseNMF(4, sparseness_components=0.8, random_state=0, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_lowrank)
    assert hoyer_sparsity(model.components_) == pytest.approx(0.8, abs=1e-4)


# -- errors --------------------------------------------------------------------
def test_negative_values_raise(X_lowrank):
    X = X_lowrank.copy()
    X[0, 0] = -1
    with pytest.raises(ValueError, match="Negative values in data passed to SparseNMF"):
        SparseNMF(2).fit(X)
    model = SparseNMF(2, max_iter=5, tol=0).fit(X_lowrank)
    with pytest.raises(ValueError, match="Negative values in data passed to SparseNMF"):
        model.transform(X)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_raise(X_lowrank, value):
    X = X_lowrank.copy()
    X[1, 2] = value
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        SparseNMF(2).fit(X)


def test_wrong_shapes_raise(X_lowrank):
    with pytest.raises(ValueError, match="Expected 2D array"):
        SparseNMF(2).fit(X_lowrank[0])
    model = SparseNMF(2, max_iter=5, tol=0).fit(X_lowrank)
    with pytest.raises(
        ValueError, match="X has 5 features, but SparseNMF is expecting"
    ):
        model.transform(X_lowrank[:, :5])
    with pytest.raises(ValueError, match="wrong first dimension passed to SparseNMF"):
        SparseNMF(2, init="custom").fit(
            X_lowrank, W=np.ones((3, 2)), H=np.ones((2, 20))
        )
    with pytest.raises(TypeError, match="should have the same dtype as X"):
        SparseNMF(2, init="custom").fit(
            X_lowrank, W=np.ones((60, 2), np.float32), H=np.ones((2, 20), np.float32)
        )


def test_unfitted_raises(X_lowrank):
    with pytest.raises(NotFittedError, match="SparseNMF instance is not fitted"):
        SparseNMF(2).transform(X_lowrank)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"sparseness_codes": 1.5}, "'sparseness_codes' parameter of SparseNMF"),
        ({"sparseness_components": -0.1}, "'sparseness_components' parameter"),
        ({"n_components": 0}, "'n_components' parameter of SparseNMF"),
        ({"solver": "pg"}, "'solver' parameter of SparseNMF"),
        ({"beta_loss": "kl"}, "'beta_loss' parameter of SparseNMF"),
        ({"beta_loss": 1.0}, "solver 'cd' does not handle beta_loss = 1.0"),
        (
            {"solver": "mu", "beta_loss": 1.0, "sparseness_codes": 0.5},
            "sparseness constraints .* need beta_loss='frobenius'",
        ),
        ({"device": "tpu"}, "Invalid device='tpu'"),
        ({"init": "nndsvd", "n_components": 30}, "init = 'nndsvd' can only be used"),
    ],
)
def test_bad_parameters_raise(X_lowrank, params, match):
    with pytest.raises(ValueError, match=match):
        SparseNMF(**params).fit(X_lowrank)


def test_itakura_saito_with_zeros_raises(X_lowrank):
    X = X_lowrank.copy()
    X[0, 0] = 0
    with pytest.raises(ValueError, match="When beta_loss <= 0 and X contains zeros"):
        SparseNMF(2, solver="mu", beta_loss="itakura-saito").fit(X)


def test_convergence_warning(X_lowrank):
    with pytest.warns(ConvergenceWarning, match="Maximum number of iterations 2"):
        SparseNMF(3, max_iter=2).fit(X_lowrank)


def test_mu_with_nndsvd_warns(X_lowrank):
    with pytest.warns(UserWarning, match="cannot update zeros present in the init"):
        SparseNMF(3, solver="mu", init="nndsvd", max_iter=500).fit(X_lowrank)


# -- MNIST: part-based atoms -----------------------------------------------------
def test_mnist_atoms_are_sparse_parts(mnist_train_2000):
    X = mnist_train_2000[0][:500]
    model = SparseNMF(16, sparseness_components=0.8, random_state=0, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    np.testing.assert_allclose(_hoyer_rows(model.components_), 0.8, atol=1e-4)
    plain = SparseNMF(16, random_state=0, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain.fit(X)
    # The constraint costs some error, but not a collapse.
    assert model.reconstruction_err_ < 1.5 * plain.reconstruction_err_


@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_one_component_and_one_row(X_lowrank, solver):
    # A (n, 1) or (1, k) factor is contiguous either way round: the codes solver
    # must still work on a copy (it used to write onto its own input).
    model = SparseNMF(1, solver=solver, tol=0, max_iter=5).fit(X_lowrank)
    W = model.transform(X_lowrank)
    assert W.shape == (60, 1) and np.all(np.isfinite(W)) and W.min() >= 0
    np.testing.assert_allclose(model.transform(X_lowrank[:1]), W[:1], rtol=1e-10)
    model = SparseNMF(3, solver=solver, tol=0, max_iter=5).fit(X_lowrank)
    np.testing.assert_allclose(
        model.transform(X_lowrank[:1]), model.transform(X_lowrank)[:1], rtol=1e-10
    )
