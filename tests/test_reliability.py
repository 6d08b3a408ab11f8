"""A fitted model never goes silently wrong (SparseNMF and MultilayerNMF):
bounded online atoms."""

import numpy as np
import pytest
import torch

from skpart import MultilayerNMF, SparseNMF
from skpart._core._online import (
    OnlineNMF,
    balance_atoms,
    update_atoms,
)


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
