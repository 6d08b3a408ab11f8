"""Sparse input in the beta-divergence core: dense numbers, never densified."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.decomposition._nmf import _beta_divergence
from sklearn.exceptions import ConvergenceWarning

from skpart import SparseNMF
from skpart._core._beta import (
    beta_divergence,
    divergence_rows,
    mu_terms_atoms,
    mu_terms_codes,
)
from skpart._core._nmf import fit_nmf, solve_codes
from skpart._core._operator import DataOperator
from skpart._estimators._base import to_tensor

BETAS = [0.5, 1.0, 1.5, 2.0, 3.0]


@pytest.fixture
def problem(rng):
    """A 50 x 40 CSR matrix at density 0.15 (with two empty rows and an
    explicit zero), its dense copy and positive factors with k = 4."""
    D = rng.rand(50, 40)
    D[rng.rand(50, 40) > 0.15] = 0
    D[7:9] = 0
    D[3, 5] = 0
    D[D > 0.5] = np.where(D[D > 0.5] > 0.9, 1e-9, D[D > 0.5])  # <= EPSILON
    coo = sp.coo_matrix(D)
    X = sp.csr_matrix(
        (np.r_[coo.data, 0.0], (np.r_[coo.row, 3], np.r_[coo.col, 5])), shape=D.shape
    )
    assert X.nnz == coo.nnz + 1  # with an explicit zero
    W = rng.rand(50, 4) + 0.05
    H = rng.rand(4, 40) + 0.05
    return X, W, H


def _tensors(X, W, H):
    Xs = to_tensor(X, device="cpu")
    return Xs, torch.from_numpy(X.toarray()), torch.from_numpy(W), torch.from_numpy(H)


@pytest.mark.parametrize("beta", BETAS)
def test_terms_and_divergences_of_csr_equal_dense(problem, beta):
    Xs, Xd, W, H = _tensors(*problem)
    sparse, dense = DataOperator(Xs), DataOperator(Xd)
    assert sparse.sparse and not dense.sparse
    rows_d = divergence_rows(dense, W, H, beta)
    assert float(rows_d.min()) > 0.1  # every row, the empty ones too
    np.testing.assert_allclose(divergence_rows(sparse, W, H, beta), rows_d, rtol=1e-12)
    total = float(beta_divergence(Xd, W, H, beta))
    assert float(beta_divergence(Xs, W, H, beta)) == pytest.approx(total, rel=1e-12)
    if beta == 2:
        return
    for terms in (mu_terms_codes, mu_terms_atoms):
        for got, want in zip(terms(sparse, W, H, beta), terms(dense, W, H, beta)):
            assert float(want.min()) >= 0 and float(want.max()) > 0.1
            np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("beta", BETAS)
def test_beta_divergence_of_csr_equals_sklearns(problem, beta):
    X, W, H = problem
    X = X.copy()
    X.eliminate_zeros()  # sklearn's _special_sparse_dot skips stored zeros
    Xs, _, Wt, Ht = _tensors(X, W, H)
    ours = float(beta_divergence(Xs, Wt, Ht, beta, square_root=True))
    assert ours > 1.0
    assert ours == pytest.approx(
        _beta_divergence(X, W, H, beta, square_root=True), rel=1e-12
    )


def test_transposed_with_puts_values_in_place(problem):
    X = problem[0]
    op = DataOperator(to_tensor(X, device="cpu"))
    values = torch.arange(1.0, X.nnz + 1, dtype=torch.float64)
    expected = sp.csr_matrix((values.numpy(), X.indices, X.indptr), shape=X.shape)
    np.testing.assert_array_equal(
        op.transposed_with(values).to_dense().numpy(), expected.T.toarray()
    )
    np.testing.assert_array_equal(op.Xt.to_dense().numpy(), X.T.toarray())


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("init", ["random", "nndsvda"])
def test_mu_fit_on_csr_equals_fit_on_dense(problem, beta, init):
    X = problem[0]
    kw = dict(n_components=4, solver="mu", beta_loss=beta, init=init, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = SparseNMF(max_iter=30, random_state=0, **kw).fit(X.toarray())
        sparse = SparseNMF(max_iter=30, random_state=0, **kw).fit(X)
    assert np.abs(dense.components_).max() > 0.1
    np.testing.assert_allclose(sparse.components_, dense.components_, rtol=1e-9)
    assert sparse.reconstruction_err_ == pytest.approx(
        dense.reconstruction_err_, rel=1e-9
    )


@pytest.mark.parametrize("beta", [1.0, 1.5])
def test_codes_of_csr_equal_codes_of_dense(problem, beta):
    # solve_codes retires rows on their own per-row divergence.
    X, _, H = problem
    Xs, Xd, _, H = _tensors(*problem)
    kw = dict(solver="mu", beta_loss=beta, max_iter=200, tol=1e-3)
    Wd, n_dense = solve_codes(Xd, H, **kw)
    Ws, n_sparse = solve_codes(Xs, H, **kw)
    assert n_sparse == n_dense > 10
    np.testing.assert_allclose(Ws, Wd, rtol=1e-9, atol=1e-12)


def _refuse(*args, **kwargs):
    raise AssertionError("sparse X densified")


def test_kullback_leibler_on_csr_forms_no_dense_block(problem, monkeypatch):
    # With beta = 1 nothing of size n x m exists: no dense block of X, no
    # block of W H (the dense row loop reads op.row_slices or row_blocks).
    Xs = to_tensor(problem[0], device="cpu")
    monkeypatch.setattr(DataOperator, "row_blocks", _refuse)
    monkeypatch.setattr(DataOperator, "row_slices", _refuse)
    monkeypatch.setattr(torch.Tensor, "to_dense", _refuse)
    g = torch.Generator().manual_seed(0)
    W0 = torch.rand(50, 4, generator=g, dtype=torch.float64)
    H0 = torch.rand(4, 40, generator=g, dtype=torch.float64)
    W, H, n_iter, _ = fit_nmf(Xs, W0, H0, solver="mu", beta_loss=1.0, tol=1e-6)
    assert n_iter >= 10
    codes, _ = solve_codes(Xs, H, solver="mu", beta_loss=1.0, tol=1e-4)
    assert codes.shape == (50, 4)
    assert float(beta_divergence(Xs, W, H, 1.0)) < float(
        beta_divergence(Xs, W0, H0, 1.0)
    )


def test_beta_updates_reuse_one_values_array(problem):
    # The values of W H at the stored entries (and of the transposed ratio)
    # go into the operator's scratch arrays: the same storage at every
    # update, with the numbers of a fresh product.
    X, W, H = problem
    op = DataOperator(to_tensor(X, device="cpu"))
    Wt, Ht = torch.from_numpy(W), torch.from_numpy(H)
    first = op.sampled_product(Wt, Ht)
    ptr = first.data_ptr()
    expected = torch.sparse.sampled_addmm(op.X, Wt, Ht, beta=0.0).values()
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    storages = set()
    for _ in range(3):
        mu_terms_codes(op, Wt, Ht, 1.0)
        mu_terms_atoms(op, Wt, Ht, 1.0)
        storages |= {op.sampled_product(Wt, Ht).data_ptr()}
        storages |= {
            op.transposed_with(op.X.values(), scratch=True).values().data_ptr()
        }
    assert len(storages) == 2 and ptr in storages


def test_frobenius_fit_builds_the_transpose_once(problem, monkeypatch):
    # The init's operator goes on to a Frobenius fit (X^T built once); a
    # KL fit builds X^T's pattern for its own operator.
    X = sp.vstack([problem[0]] * 4).tocsr()
    calls = []
    real = DataOperator._transpose_pattern

    def counting(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(DataOperator, "_transpose_pattern", counting)
    SparseNMF(4, init="nndsvda", random_state=0, max_iter=5, tol=0).fit(X)
    assert len(calls) == 1
    calls.clear()
    SparseNMF(
        4, init="nndsvda", beta_loss="kullback-leibler", solver="mu", max_iter=5
    ).fit(X)
    assert len(calls) == 2
