"""The NMF drivers' steps on the CPU as a GPU runs them: no host syncs, a
bounded number of launches, the same iterates, and bounded memory."""

import contextlib
import weakref

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from skpart._core import _operator
from skpart._core._device import force_sync_free, make_generator
from skpart._core._graphs import GraphedBlock
from skpart._core._init import initialize_nmf
from skpart._core._nmf import (
    ExtrapolatedHALS,
    MultiplicativeFit,
    Penalties,
    fit_nmf,
)
from skpart._core._operator import DataOperator
from skpart._core._updates import factor_update
from skpart.utils._dispatch_probe import DispatchProbe


def _data(n, m, density, seed=0):
    """A non-negative (n, m) float64 tensor with about ``density`` non-zeros."""
    X = sp.random(n, m, density=density, format="csr", rng=seed, dtype=np.float64)
    return torch.tensor(X.toarray())


def _updates(solver, beta=2.0, l1=0.0, l2=0.0):
    return tuple(
        factor_update(
            solver=solver, sparseness=None, codes=c, l1=l1, l2=l2, beta=beta, order=None
        )
        for c in (True, False)
    )


def _cd_run(X, k):
    penalties = Penalties()
    W, H = initialize_nmf(X, k, "nndsvda", generator=make_generator(0))
    return ExtrapolatedHALS(
        DataOperator(X),
        W,
        H,
        updates=_updates("cd", l1=penalties.l1_W, l2=penalties.l2_W),
        penalties=penalties,
        sparseness_W=None,
        sparseness_H=None,
    )


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("rebalance", [False, True])
@pytest.mark.parametrize("violation", [False, True])
def test_cd_iteration_has_no_host_sync(layout, rebalance, violation):
    X = _data(300, 80, 0.3)
    if layout == "csr":
        X = X.to_sparse_csr()
    with force_sync_free():
        run = _cd_run(X, 8)
        run.iterate(True, True)  # the first iteration reads the start's error
        with DispatchProbe() as probe:
            run.iterate(rebalance, violation)
    assert probe.syncs == []


def test_cd_iteration_launches_do_not_grow_with_the_data():
    # HALS costs 3 launches per component and sweep (gradient, step,
    # clamp); everything else (products, extrapolation, objective, the
    # accept/restart decision) is a fixed number of launches, whatever n.
    counts = []
    for n in (200, 2000):
        with force_sync_free():
            run = _cd_run(_data(n, 60, 0.3), 8)
            run.iterate(True, True)
            with DispatchProbe() as probe:
                run.iterate(False, False)
        sweeps = run.inner_W + run.inner_H
        counts.append((probe.kernels, sweeps))
    (small, sweeps_small), (large, sweeps_large) = counts
    assert small - 3 * 8 * sweeps_small == large - 3 * 8 * sweeps_large
    # Measured: 67 launches besides the sweeps (k = 8).
    assert small - 3 * 8 * sweeps_small <= 70


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5, 0.0])
def test_mu_iteration_has_no_host_sync(layout, beta):
    X = _data(200, 50, 0.3) + (0.01 if beta < 1 else 0.0)
    if layout == "csr":
        X = X.to_sparse_csr()
    W, H = initialize_nmf(X, 6, "nndsvda", generator=make_generator(0))
    with force_sync_free():
        run = MultiplicativeFit(
            DataOperator(X),
            W,
            H,
            beta=beta,
            updates=_updates("mu", beta=beta),
            sparseness_W=None,
            sparseness_H=None,
        )
        run.iterate()
        with DispatchProbe() as probe:
            run.iterate()
    assert probe.syncs == []
    assert probe.kernels <= 55  # measured: 18 (dense, beta 2) to 51 (CSR, 0.5)


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "cd"},
        {"solver": "cd", "layout": "csr"},
        {"solver": "cd", "l1_reg_W": 0.1, "l2_reg_H": 0.2},
        {"solver": "mu"},
        {"solver": "mu", "beta_loss": 1.0, "layout": "csr"},
    ],
    ids=str,
)
def test_sync_free_fit_has_the_cpu_fit_iterates(params):
    # The device-side accept/restart decision, the in-place state and the
    # blocks of iterations give bitwise the CPU path's result.
    params = dict(params)
    X = _data(120, 40, 0.4)
    if params.pop("layout", "dense") == "csr":
        X = X.to_sparse_csr()
    W, H = initialize_nmf(X, 5, "nndsvda", generator=make_generator(0))
    common = {"max_iter": 47, "tol": 1e-6, **params}
    W_cpu, H_cpu, n_cpu, _ = fit_nmf(X, W.clone(), H.clone(), **common)
    with force_sync_free():
        W_free, H_free, n_free, _ = fit_nmf(X, W.clone(), H.clone(), **common)
    assert n_cpu == n_free
    assert torch.equal(W_cpu, W_free)
    assert torch.equal(H_cpu, H_free)


def test_sync_free_fit_leaves_the_start_alone():
    X = _data(100, 30, 0.5)
    W, H = initialize_nmf(X, 4, "nndsvda", generator=make_generator(0))
    W0, H0 = W.clone(), H.clone()
    with force_sync_free():
        fit_nmf(X, W, H, max_iter=15, tol=0)
    assert torch.equal(W, W0) and torch.equal(H, H0)


def test_graphed_block_runs_every_call_off_cuda():
    calls = []
    block = GraphedBlock(lambda: calls.append(1) or torch.ones(1), capture=False)
    for _ in range(3):
        assert block().item() == 1.0
    assert len(calls) == 3


@pytest.fixture
def small_row_block(monkeypatch):
    """Sparse products by row blocks of 64 rows (tall-data path, small data)."""
    monkeypatch.setattr(_operator, "ROW_BLOCK", 64)


def test_row_blocked_sparse_products_are_the_products(small_row_block):
    X = _data(300, 70, 0.1)
    op = DataOperator(X.to_sparse_csr())
    assert op.blocked
    gen = torch.Generator().manual_seed(0)
    H = torch.rand(5, 70, generator=gen, dtype=torch.float64)
    Wt = torch.rand(5, 300, generator=gen, dtype=torch.float64)
    Y = torch.rand(300, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(op.atoms_product_t(H), H @ X.mT, rtol=1e-13, atol=0)
    torch.testing.assert_close(op.codes_product(Wt), Wt @ X, rtol=1e-13, atol=0)
    torch.testing.assert_close(op.rmatmul(Y), X.mT @ Y, rtol=1e-13, atol=0)
    torch.testing.assert_close(op @ H.mT, X @ H.mT, rtol=1e-13, atol=0)
    parts = list(op.atoms_product_t_blocks(H))
    assert len(parts) == 5 and all(p.shape[1] <= 64 for _, p in parts)


class _CodesSizedArrays(TorchDispatchMode):
    """The largest number of distinct storages of ``nbytes`` to
    ``2 nbytes`` (codes-sized, not the data) alive at once among the tensors
    the ops inside the block touch."""

    def __init__(self, nbytes):
        super().__init__()
        self.nbytes, self.alive, self.most = nbytes, {}, 0

    def _track(self, t):
        if isinstance(t, torch.Tensor) and t.layout == torch.strided:
            storage = t.untyped_storage()
            if self.nbytes <= storage.nbytes() < 2 * self.nbytes:
                self.alive.setdefault(storage.data_ptr(), []).append(weakref.ref(t))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (*args, *(out if isinstance(out, (tuple, list)) else (out,))):
            self._track(t)
        live = sum(any(r() is not None for r in refs) for refs in self.alive.values())
        self.most = max(self.most, live)
        return out


@pytest.mark.parametrize("layout, most", [("csr", 3), ("dense", 4)])
def test_cd_iteration_holds_three_copies_of_the_codes(small_row_block, layout, most):
    # The best codes (where the update starts), the new ones and their
    # extrapolation, written over the accepted codes: on a tall CSR the cross
    # term X H^T goes by row blocks, the balancing scales in place (it made
    # three more copies) and neither the accepted codes nor a separate best
    # copy outlives the extrapolation (four before). A dense X's whole cross
    # term, codes-sized too, is alive during the codes' update (X itself is
    # larger than the codes there).
    n, k = 640, 6
    X = _data(n, 50, 0.1)
    if layout == "csr":
        X = X.to_sparse_csr()
    run = _cd_run(X, k)
    run.iterate(True, False)
    for rebalance in (True, False):
        with _CodesSizedArrays(n * k * 8) as probe:
            run.iterate(rebalance, True)
        assert probe.most <= most


@pytest.mark.parametrize("cls", ["SparseNMF", "MultilayerNMF"])
def test_online_fit_moves_in_memory_data_once(monkeypatch, cls):
    # Off the CPU the first pass's mini-batch tensors are kept on the device
    # and reused: here forced on the CPU, the chunks are validated and
    # converted once, and the fit is bitwise the streamed one.
    import skpart
    from skpart._estimators import _streaming

    X = np.abs(np.random.default_rng(0).standard_normal((300, 20)))
    params = {"max_iter": 4, "tol": 0, "batch_size": 64, "random_state": 0}
    make = {
        "SparseNMF": lambda: skpart.SparseNMF(5, **params),
        "MultilayerNMF": lambda: skpart.MultilayerNMF((6, 3), **params),
    }[cls]
    calls = []
    real = _streaming.validated_chunks

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_streaming, "validated_chunks", counting)
    streamed = make().fit(X)
    n_streamed, calls[:] = len(calls), []
    monkeypatch.setattr(_streaming, "kept_on_device", lambda X, device: True)
    kept = make().fit(X)
    # Passes 2 to 4 no longer go back to X.
    assert len(calls) == n_streamed - 3
    np.testing.assert_array_equal(kept.components_, streamed.components_)
    assert kept.n_iter_ == streamed.n_iter_ == 4


def test_cd_iteration_on_tall_sparse_data_has_no_host_sync(small_row_block):
    # The row blocks are cut once (reading the row pointers), not per step.
    X = _data(300, 50, 0.1).to_sparse_csr()
    with force_sync_free():
        run = _cd_run(X, 5)
        run.iterate(True, True)
        with DispatchProbe() as probe:
            run.iterate(True, True)
    assert run.op.blocked
    assert probe.syncs == []


@pytest.mark.parametrize("sync", [False, True])
def test_cd_fit_returns_the_best_pair_whatever_max_iter(sync):
    # The fit returns the best pair met, so more iterations never give a
    # larger error, also when the last one restarted (the fit of 13
    # iterations here, which returns the pair of the 12th). Sync-free the
    # same.
    from skpart import SparseNMF

    X = sp.random(300, 80, density=0.2, random_state=0, format="csr")
    errors = []
    with force_sync_free() if sync else contextlib.nullcontext():
        for n in range(1, 31):
            model = SparseNMF(8, init="random", random_state=0, tol=0, max_iter=n)
            errors.append(model.fit(X).reconstruction_err_)
    assert np.all(np.diff(errors) <= 1e-12 * errors[0])
    assert np.any(np.diff(errors) == 0)  # a last iteration restarted
