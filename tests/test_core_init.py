"""Tests for the torch NMF initialisations and randomized SVD in skpart._core._init."""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.decomposition._nmf import _initialize_nmf

from skpart._core._device import make_generator
from skpart._core._init import _nndsvd, initialize_nmf, randomized_svd

INITS = ["random", "nndsvd", "nndsvda", "nndsvdar"]
DTYPES = [torch.float32, torch.float64]


def _planted(n_samples=60, n_features=40, rank=5, noise=1e-3, seed=0):
    """Non-negative ``W @ H + noise`` with a clear gap after ``rank`` values."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(0.5, 1.5, (n_samples, rank))
    H = rng.uniform(0.5, 1.5, (rank, n_features))
    W *= rng.random(W.shape) > 0.3  # sparse factors: NNDSVD has sign structure
    H *= rng.random(H.shape) > 0.3
    return W @ H + noise * rng.random((n_samples, n_features))


def _init(X, k, init, seed=0, **kwargs):
    return initialize_nmf(X, k, init, generator=make_generator(seed), **kwargs)


def _rel_error(X, W, H):
    X, W, H = (np.asarray(a, dtype=np.float64) for a in (X, W, H))
    return np.linalg.norm(X - W @ H) / np.linalg.norm(X)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_shapes_dtype_nonnegative_finite(init, dtype):
    X = torch.as_tensor(_planted(), dtype=dtype)
    W, H = _init(X, 7, init)
    assert W.shape == (60, 7) and H.shape == (7, 40)
    assert W.dtype == dtype and H.dtype == dtype
    assert W.device == X.device and H.device == X.device
    for M in (W, H):
        assert torch.isfinite(M).all()
        assert (M >= 0).all()
        assert M.abs().max() > 0.1  # not a trivial all-zero start


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda"])
def test_nndsvd_matches_sklearn(init):
    X = _planted()
    W_sk, H_sk = _initialize_nmf(X, 5, init=init, random_state=0)
    W, H = _init(torch.as_tensor(X), 5, init)
    assert np.linalg.norm(W_sk) > 1.0 and np.linalg.norm(H_sk) > 1.0
    assert_allclose(W.numpy(), W_sk, rtol=1e-5, atol=1e-8)
    assert_allclose(H.numpy(), H_sk, rtol=1e-5, atol=1e-8)


def test_nndsvd_float32_matches_float64():
    X = _planted()
    W64, H64 = _init(torch.as_tensor(X), 5, "nndsvd")
    W32, H32 = _init(torch.as_tensor(X, dtype=torch.float32), 5, "nndsvd")
    assert W64.norm() > 1.0 and H64.norm() > 1.0
    assert_allclose(W32.numpy(), W64.numpy(), rtol=1e-3, atol=1e-4)
    assert_allclose(H32.numpy(), H64.numpy(), rtol=1e-3, atol=1e-4)


def test_nndsvd_has_zeros_nndsvda_has_none():
    X = torch.as_tensor(_planted())
    W, H = _init(X, 5, "nndsvd")
    assert (W == 0).any() and (H == 0).any()
    Wa, Ha = _init(X, 5, "nndsvda")
    assert (Wa > 0).all() and (Ha > 0).all()
    # nndsvda only fills the zeros of nndsvd, with the mean of X
    avg = X.mean()
    assert torch.equal(Wa, torch.where(W == 0, avg, W))
    assert torch.equal(Ha, torch.where(H == 0, avg, H))


def test_nndsvd_truncates_below_eps():
    X = torch.as_tensor(_planted())
    W, H = _init(X, 5, "nndsvd")
    We, He = _init(X, 5, "nndsvd", eps=0.05)
    for M, Me in ((W, We), (H, He)):
        assert ((M > 0) & (M < 0.05)).any()  # the larger eps has work to do
        assert torch.equal(Me, torch.where(M < 0.05, 0.0, M))


def test_nndsvdar_fills_zeros_with_small_values():
    X = torch.as_tensor(_planted())
    W, H = _init(X, 5, "nndsvd")
    Wr, Hr = _init(X, 5, "nndsvdar")
    for M, Mr in ((W, Wr), (H, Hr)):
        zeros = M == 0
        assert torch.equal(Mr[~zeros], M[~zeros])
        assert (Mr[zeros] > 0).all()
        assert Mr[zeros].max() < 0.05 * X.mean()


@pytest.mark.parametrize("noise", [1e-3, 0.3])
def test_nndsvd_reconstruction_as_good_as_sklearn(noise):
    X = _planted(80, 50, rank=8, noise=noise, seed=1)
    W_sk, H_sk = _initialize_nmf(X, 8, init="nndsvd", random_state=0)
    W, H = _init(torch.as_tensor(X), 8, "nndsvd")
    err, err_sk = _rel_error(X, W, H), _rel_error(X, W_sk, H_sk)
    assert err_sk < 0.9  # NNDSVD is a real approximation here
    assert abs(err - err_sk) < 1e-4


def test_random_scale():
    X = torch.as_tensor(_planted(200, 100, rank=5))
    k = 10
    W, H = _init(X, k, "random")
    # E|N(0, 1)| = sqrt(2 / pi), and E[N(0, 1)^2] = 1
    scale = math.sqrt(X.mean().item() / k)
    abs_mean = scale * math.sqrt(2 / math.pi)
    for M in (W, H):
        assert M.mean().item() == pytest.approx(abs_mean, rel=0.05)
        assert M.pow(2).mean().sqrt().item() == pytest.approx(scale, rel=0.05)


@pytest.mark.parametrize("init", INITS)
def test_same_seed_bitwise_identical(init):
    X = torch.as_tensor(_planted(), dtype=torch.float32)
    W1, H1 = _init(X, 5, init, seed=3)
    W2, H2 = _init(X, 5, init, seed=3)
    assert torch.equal(W1, W2) and torch.equal(H1, H2)


@pytest.mark.parametrize("init", ["random", "nndsvdar"])
def test_different_seed_differs(init):
    X = torch.as_tensor(_planted())
    W1, H1 = _init(X, 5, init, seed=0)
    W2, H2 = _init(X, 5, init, seed=1)
    assert not torch.equal(W1, W2) and not torch.equal(H1, H2)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("layout", ["csr", "coo", "csc"])
def test_sparse_equals_dense(init, layout):
    X = _planted()
    X[X < np.quantile(X, 0.4)] = 0
    Xd = torch.as_tensor(X)
    to_sparse = {
        "csr": Xd.to_sparse_csr,
        "coo": Xd.to_sparse,
        "csc": Xd.to_sparse_csc,
    }[layout]
    W, H = _init(Xd, 5, init, seed=2)
    Ws, Hs = _init(to_sparse(), 5, init, seed=2)
    assert W.norm() > 1.0 and H.norm() > 1.0
    assert Ws.layout == torch.strided and Hs.layout == torch.strided
    assert_allclose(Ws.numpy(), W.numpy(), rtol=1e-8, atol=1e-10)
    assert_allclose(Hs.numpy(), H.numpy(), rtol=1e-8, atol=1e-10)


def test_nndsvd_insensitive_to_singular_vector_signs():
    X = torch.as_tensor(_planted())
    U, S, Vh = randomized_svd(X, 5, generator=make_generator(0))
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0], dtype=X.dtype)
    W, H = _nndsvd(U, S, Vh, 1e-6)
    Wf, Hf = _nndsvd(U * signs, S, Vh * signs[:, None], 1e-6)
    assert torch.equal(W, Wf) and torch.equal(H, Hf)


def test_nndsvd_zero_part_gives_zeros_not_nan():
    # x >= 0 with y <= 0: both products of part norms are 0 (a sigma = 0 triplet)
    U = torch.tensor([[1.0, 0.6], [0.0, 0.8]], dtype=torch.float64)
    Vh = torch.tensor([[1.0, 0.0], [-0.6, -0.8]], dtype=torch.float64)
    S = torch.tensor([2.0, 1.0], dtype=torch.float64)
    W, H = _nndsvd(U, S, Vh, 1e-6)
    assert torch.isfinite(W).all() and torch.isfinite(H).all()
    assert (W[:, 1] == 0).all() and (H[1] == 0).all()
    assert_allclose(W[:, 0].numpy(), math.sqrt(2.0) * np.array([1.0, 0.0]))


@pytest.mark.parametrize("shape", [(300, 120), (120, 300)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_randomized_svd_matches_exact(shape, dtype):
    rng = np.random.default_rng(0)
    k = 10
    low_rank = rng.standard_normal((shape[0], k)) @ rng.standard_normal((k, shape[1]))
    X = torch.as_tensor(low_rank + 0.01 * rng.standard_normal(shape), dtype=dtype)
    U, S, Vh = randomized_svd(X, k, generator=make_generator(0))
    assert U.shape == (shape[0], k) and S.shape == (k,) and Vh.shape == (k, shape[1])
    assert U.dtype == dtype and S.dtype == dtype and Vh.dtype == dtype
    S_exact = torch.linalg.svdvals(X.double())[:k]
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    assert_allclose(S.double().numpy(), S_exact.numpy(), rtol=rtol)
    eye, atol = np.eye(k), 100 * torch.finfo(dtype).eps
    assert_allclose((U.mT @ U).double().numpy(), eye, atol=atol)
    assert_allclose((Vh @ Vh.mT).double().numpy(), eye, atol=atol)
    # sklearn's sign convention: the largest |entry| of each column of U is > 0
    idx = U.abs().argmax(dim=0)
    assert (U[idx, torch.arange(k)] > 0).all()


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_randomized_svd_sparse_and_explicit_n_iter():
    X = _planted(100, 70, rank=6, noise=0.01)
    X[X < np.quantile(X, 0.5)] = 0
    Xd = torch.as_tensor(X)
    S_exact = torch.linalg.svdvals(Xd)[:6]
    for n_iter in (0, 2, "auto"):
        U, S, Vh = randomized_svd(Xd, 6, generator=make_generator(0), n_iter=n_iter)
        Us, Ss, Vhs = randomized_svd(
            Xd.to_sparse_csr(), 6, generator=make_generator(0), n_iter=n_iter
        )
        assert_allclose(Ss.numpy(), S.numpy(), rtol=1e-10)
        assert_allclose(Us.numpy(), U.numpy(), atol=1e-8)
        assert_allclose(Vhs.numpy(), Vh.numpy(), atol=1e-8)
    # with power iterations the top values are exact up to rounding
    assert_allclose(S.numpy(), S_exact.numpy(), rtol=1e-8)


def test_unknown_init_raises():
    X = torch.as_tensor(_planted())
    with pytest.raises(ValueError, match="Invalid init 'nndsvdz'"):
        _init(X, 5, "nndsvdz")
