"""The warm-up of SparseNMF's ``solver="cd"`` fit: its first iterations are
scikit-learn's coordinate descent iterations, after which the extrapolated
iterations converge where scikit-learn's do (issue 14)."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition import NMF

from skpart import SparseNMF
from skpart._core import _nmf
from skpart._core._device import force_sync_free, make_generator
from skpart._core._init import initialize_nmf
from skpart._core._nmf import WARM_UP, ExtrapolatedHALS, Penalties, fit_nmf
from skpart._core._operator import DataOperator
from skpart._core._updates import factor_update
from skpart.utils._dispatch_probe import DispatchProbe


def _sparse_data(n, m, density, seed):
    rng = np.random.RandomState(seed)
    X = np.abs(rng.randn(n, m)) * (rng.rand(n, m) < density)
    return X


def _fit_both(X, **params):
    params = dict(init="nndsvda", random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached, alike in both
        return NMF(**params).fit(X), SparseNMF(**params).fit(X)


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix])
@pytest.mark.parametrize("max_iter", [1, WARM_UP])
def test_warm_up_iterates_are_sklearns(container, max_iter):
    X = container(_sparse_data(80, 50, 0.4, seed=0))
    sk, ours = _fit_both(X, n_components=6, tol=0, max_iter=max_iter)
    assert np.abs(sk.components_).max() > 0.1  # not a trivial factorisation
    np.testing.assert_allclose(ours.components_, sk.components_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.reconstruction_err_, sk.reconstruction_err_)


def test_extrapolation_starts_after_the_warm_up():
    # Ten iterations later the accelerated fit is ahead of scikit-learn's.
    X = _sparse_data(80, 50, 0.4, seed=0)
    sk, ours = _fit_both(X, n_components=6, tol=0, max_iter=WARM_UP + 10)
    assert ours.reconstruction_err_ < sk.reconstruction_err_ - 1e-3


def _topic_data(seed):
    """150 documents x 80 words: six sparse topics, noise, 70% of the entries
    set to zero."""
    rng = np.random.RandomState(seed)
    W, H = rng.gamma(0.3, 1, (150, 6)), rng.gamma(0.3, 1, (6, 80))
    return (W @ H + 0.1 * rng.rand(150, 80)) * (rng.rand(150, 80) < 0.3)


@pytest.mark.parametrize("container", [np.asarray, sp.csr_matrix])
def test_cd_converges_where_sklearn_converges(container, monkeypatch):
    # Extrapolated from the first iteration, the fit ends in another
    # minimum, 1% above scikit-learn's (12 of 101 small problems tried ended
    # above scikit-learn's minimum that way, none after the warm-up).
    X = container(_topic_data(seed=7))
    params = dict(n_components=8, init="nndsvda", random_state=0, tol=0)
    sk = NMF(max_iter=3000, **params).fit(X)
    ours = SparseNMF(max_iter=300, **params).fit(X)
    assert ours.reconstruction_err_ <= sk.reconstruction_err_ * (1 + 1e-7)
    # The same minimum, not only the same error: the same atoms.
    cos = _cosines(ours.components_, sk.components_)
    assert cos.max(axis=1).min() > 0.999
    monkeypatch.setattr(_nmf, "WARM_UP", 0)
    without = SparseNMF(max_iter=300, **params).fit(X)
    assert without.reconstruction_err_ > sk.reconstruction_err_ * 1.005


def _cosines(A, B):
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    return A @ B.T


def test_warm_up_iteration_has_no_host_sync():
    X = torch.tensor(_sparse_data(300, 80, 0.3, seed=1))
    W, H = initialize_nmf(X, 8, "nndsvda", generator=make_generator(0))
    with force_sync_free():
        run = ExtrapolatedHALS(
            DataOperator(X),
            W,
            H,
            updates=tuple(
                factor_update(solver="cd", sparseness=None, codes=c)
                for c in (True, False)
            ),
            penalties=Penalties(),
            sparseness_W=None,
            sparseness_H=None,
        )
        run.iterate(True, True, plain=True)
        weight = float(run.weight.weight)
        with DispatchProbe() as probe:
            run.iterate(True, True, plain=True)
    assert probe.syncs == []
    assert float(run.weight.weight) == weight  # the extrapolation waits


def test_constrained_fit_has_no_warm_up(monkeypatch):
    # With a sparseness target there are no scikit-learn iterations to follow:
    # the fit is the same with and without the warm-up.
    X = torch.tensor(_sparse_data(60, 30, 0.5, seed=2))
    W, H = initialize_nmf(X, 4, "nndsvda", generator=make_generator(0))
    params = dict(max_iter=25, tol=0, sparseness_H=0.6)
    W1, H1, _, _ = fit_nmf(X, W.clone(), H.clone(), **params)
    monkeypatch.setattr(_nmf, "WARM_UP", 0)
    W0, H0, _, _ = fit_nmf(X, W.clone(), H.clone(), **params)
    assert torch.equal(W0, W1)
    assert torch.equal(H0, H1)
