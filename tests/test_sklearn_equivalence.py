"""SparseNMF as a drop-in for sklearn's NMF: same start, stops and numbers."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition import NMF
from sklearn.decomposition._nmf import _initialize_nmf
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF
from skpart._core._init import initialize_nmf
from skpart._estimators._nmf_base import sklearn_normals


def _half_zero_columns():
    """The issue's 10 x 10 matrix with every other column zero."""
    X = np.abs(np.random.RandomState(42).randn(10, 10))
    X[:, 1::2] = 0
    return X


@pytest.mark.parametrize("solver", ["cd", "mu"])
@pytest.mark.parametrize(
    "X",
    [_half_zero_columns(), sp.random(60, 40, density=0.3, random_state=1).toarray()],
    ids=["10x10", "60x40"],
)
def test_dense_and_sparse_containers_give_the_same_iterates(X, solver):
    # The CSR products round differently from the dense ones; the fit must
    # not turn that into another factorisation (it did, by 1.6e-4: restarts
    # of the extrapolation decided by rounding noise).
    kw = dict(n_components=5, init="random", tol=0, max_iter=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = SparseNMF(solver=solver, **kw)
        W = dense.fit_transform(X)
        for container in (sp.csr_matrix, sp.csc_matrix):
            other = SparseNMF(solver=solver, **kw)
            W_other = other.fit_transform(container(X))
            scale = np.abs(W).max()
            np.testing.assert_allclose(W_other, W, rtol=1e-7, atol=1e-7 * scale)
            np.testing.assert_allclose(
                other.components_,
                dense.components_,
                rtol=1e-7,
                atol=1e-7 * np.abs(dense.components_).max(),
            )


@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_float32_agrees_with_float64_as_closely_as_sklearn(solver):
    # The case (scikit-learn's own consistency test): sklearn's codes
    # agree to 2.3e-6; SparseNMF's differed by 5.7e-3.
    X = np.abs(np.random.RandomState(0).randn(50, 7))
    gaps = {}
    for Est in (NMF, SparseNMF):
        W64 = Est(random_state=0, tol=1e-3, solver=solver).fit_transform(X)
        W32 = Est(random_state=0, tol=1e-3, solver=solver).fit_transform(
            X.astype(np.float32)
        )
        assert W32.dtype == np.float32
        gaps[Est] = np.abs(W64 - W32).max()
    assert gaps[SparseNMF] <= max(2 * gaps[NMF], 1e-6)


@pytest.mark.parametrize(
    "init, dtype",
    [
        ("random", np.float64),
        ("random", np.float32),
        ("nndsvd", np.float64),
        ("nndsvda", np.float64),
        ("nndsvdar", np.float64),
    ],
)
def test_starts_are_sklearns(init, dtype):
    # The same seed gives scikit-learn's start: its NumPy normals, in its
    # order and from its generators (the SVD's test matrix from one, the
    # draws of "random" and of nndsvdar's fill from another), so the NNDSVD
    # starts agree to the rounding of the randomized SVD. (In float32 that
    # rounding can move an entry across NNDSVD's zero threshold, in either
    # library: nndsvda then fills it, or not.)
    X = np.abs(np.random.RandomState(1).randn(30, 12)).astype(dtype)
    W_sk, H_sk = _initialize_nmf(X, 5, init, random_state=0)
    W, H = initialize_nmf(
        torch.from_numpy(X),
        5,
        init,
        generator=torch.Generator().manual_seed(0),
        normals=sklearn_normals(0),
        svd_normals=sklearn_normals(0),
    )
    assert W.dtype == H.dtype == torch.from_numpy(X).dtype
    if init == "random" and dtype == np.float64:
        np.testing.assert_array_equal(W.numpy(), W_sk)
        np.testing.assert_array_equal(H.numpy(), H_sk)
    elif init == "random":  # the scale sqrt(mean / k) may differ by an ulp
        np.testing.assert_allclose(W.numpy(), W_sk, rtol=3e-7)
        np.testing.assert_allclose(H.numpy(), H_sk, rtol=3e-7)
    else:
        np.testing.assert_allclose(W.numpy(), W_sk, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(H.numpy(), H_sk, rtol=1e-9, atol=1e-12)


def test_default_start_is_sklearns():
    # init=None resolves to nndsvda: with scikit-learn's start and its
    # multiplicative updates, the atoms after three iterations are its atoms.
    X = np.abs(np.random.RandomState(4).randn(60, 25))
    kw = dict(n_components=6, solver="mu", max_iter=3, tol=0, random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = NMF(**kw).fit(X)
        ours = SparseNMF(**kw).fit(X)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-8)


def test_random_init_fits_like_sklearn():
    # Same start and the same multiplicative updates: the same factors after
    # a few iterations, from the public API alone.
    X = np.abs(np.random.RandomState(3).randn(40, 15))
    kw = dict(n_components=4, init="random", solver="mu", max_iter=20, tol=0)
    sk = NMF(random_state=7, **kw).fit(X)
    ours = SparseNMF(random_state=7, **kw).fit(X)
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=1e-9)


@pytest.mark.parametrize("beta_loss", ["frobenius", "kullback-leibler"])
def test_mu_stops_where_sklearn_stops(beta_loss):
    # The case: sklearn runs 930 iterations to 0.0033, SparseNMF
    # stopped at 410 with 0.044 (another start).
    A = np.abs(np.random.RandomState(0).randn(6, 4))
    kw = dict(n_components=4, init="random", random_state=0, max_iter=1000)
    kw.update(solver="mu", beta_loss=beta_loss)
    sk = NMF(**kw).fit(A)
    ours = SparseNMF(**kw).fit(A)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.reconstruction_err_ == pytest.approx(sk.reconstruction_err_, rel=1e-9)
    if beta_loss == "frobenius":
        assert sk.n_iter_ == 930


def test_output_feature_names_are_sklearns():
    X = np.abs(np.random.RandomState(0).randn(20, 6))
    kw = dict(n_components=3, max_iter=500, random_state=0)
    names = SparseNMF(**kw).fit(X).get_feature_names_out()
    np.testing.assert_array_equal(names, NMF(**kw).fit(X).get_feature_names_out())
    with pytest.raises(ValueError, match="input_features"):
        SparseNMF(**kw).fit(X).get_feature_names_out(["a", "b"])


X_WARN = np.abs(np.random.RandomState(0).randn(30, 8))
#: Calls that warn, each as (the warning, a function making the call).
WARNING_CALLS = {
    "fit": (ConvergenceWarning, lambda: SparseNMF(3, max_iter=2).fit(X_WARN)),
    "fit_transform": (
        ConvergenceWarning,
        lambda: SparseNMF(3, max_iter=2).fit_transform(X_WARN),
    ),
    "mu with nndsvd": (
        UserWarning,
        lambda: SparseNMF(3, tol=0, solver="mu", init="nndsvd").fit(X_WARN),
    ),
    "W without custom init": (
        RuntimeWarning,
        lambda: SparseNMF(3, tol=0).fit(X_WARN, W=X_WARN[:, :3]),
    ),
    "online": (
        ConvergenceWarning,
        lambda: SparseNMF(3, max_iter=1, batch_size=10).fit(X_WARN),
    ),
    "pipeline": (
        ConvergenceWarning,
        lambda: make_pipeline(SparseNMF(3, max_iter=2)).fit(X_WARN),
    ),
    "multilayer": (
        ConvergenceWarning,
        lambda: MultilayerNMF((3, 2), max_iter=2).fit(X_WARN),
    ),
    "autoencoder": (
        ConvergenceWarning,
        lambda: NonnegativeSparseAutoencoder(3, max_iter=2).fit(X_WARN),
    ),
}


@pytest.mark.parametrize("case", list(WARNING_CALLS))
def test_warnings_point_at_the_callers_line(case):
    # Not at sklearn/base.py or sklearn/utils/_set_output.py, whatever the
    # depth of the call.
    category, call = WARNING_CALLS[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    ours = [w for w in caught if issubclass(w.category, category)]
    assert ours
    for w in ours:
        assert w.filename == __file__, (w.filename, str(w.message))
