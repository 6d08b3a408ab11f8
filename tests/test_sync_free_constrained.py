"""The constrained, online and multilayer steps queue their kernels without
waiting for the device (issue 16), proved on the CPU with DispatchProbe.

Each step runs under :class:`~skpart.utils._dispatch_probe.DispatchProbe`: no
op that reads a value back to the host (``.item()``, ``bool(t)``, boolean
indexing, ``nonzero``), and a number of kernels bounded close to the count
measured when the step was made sync-free, so that a regression fails. The
projection's sync-free method, the one a GPU runs, is forced on the CPU with
``force_sync_free()``; the CPU keeps its active-set method, whose results are
unchanged. Where the arithmetic is unchanged (the online and fine-tuning
loops) the results are compared bitwise with the loops as they were, written
out below; where it changed (the sort-based projection, in float64), within
float tolerance.
"""

import math

import pytest
import torch

from skpart._core import _online
from skpart._core._device import force_sync_free
from skpart._core._hals import n_inner_sweeps
from skpart._core._hoyer import cone_project, perron_bound, pg_steps
from skpart._core._multilayer import (
    TwoSidedQuadratic,
    _balance,
    _error,
    _layer_grams,
    _update_layers,
    effective_atoms,
    fine_tune,
    monotone_apg,
)
from skpart._core._online import (
    OnlineNMF,
    balance_atoms,
    dead_components,
    minibatch_step,
    multilayer_step,
    run_passes,
    update_atoms,
)
from skpart._core._operator import DataOperator, gram_half_sq_error
from skpart._core._projections import (
    l1_for_sparseness,
    project_l1_l2,
    project_sparseness,
)
from skpart._core._stopping import ErrorPlateau
from skpart._core._updates import factor_update
from skpart.utils._dispatch_probe import DispatchProbe


def hoyer(x):
    x = x.to(torch.float64)
    n = x.shape[1]
    ratio = x.abs().sum(1) / torch.linalg.vector_norm(x, dim=1)
    return (math.sqrt(n) - ratio) / (math.sqrt(n) - 1)


def probed(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` under a DispatchProbe: (result, probe)."""
    with DispatchProbe() as probe:
        out = fn(*args, **kwargs)
    return out, probe


@pytest.fixture
def problem():
    """A small factorisation problem in float64: X ~ W H, k = 10."""
    g = torch.Generator().manual_seed(0)
    W = torch.rand(200, 10, generator=g, dtype=torch.float64)
    H = torch.rand(10, 64, generator=g, dtype=torch.float64)
    X = W @ H + 0.1 * torch.rand(200, 64, generator=g, dtype=torch.float64)
    return W, H, X


# -- the projection ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sync_free_projection_no_sync_and_exact(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(500, 100, generator=g, dtype=dtype)
    with force_sync_free():
        p, probe = probed(project_sparseness, x, 0.6, l2=1.0)
    assert probe.syncs == []
    # 64 kernels when written (62 in float64); the CPU method: 236 and 11 syncs.
    assert probe.kernels <= 66
    assert p.dtype == dtype and (p >= 0).all()
    atol = 1e-7 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(
        hoyer(p), torch.full_like(hoyer(p), 0.6), rtol=0, atol=atol
    )
    l1 = torch.full((500,), l1_for_sparseness(0.6, 100), dtype=torch.float64)
    torch.testing.assert_close(p.sum(1).double(), l1, rtol=1e-6, atol=0)


@pytest.mark.parametrize("s", [0.0, 0.3, 0.663, 0.9, 1.0])
def test_sync_free_projection_matches_cpu_method(s):
    # The same projection (exact up to rounding) as the CPU's active-set
    # method; ties broken by the same ramp; the ends exactly the same.
    g = torch.Generator().manual_seed(1)
    cases = [
        torch.randn(300, 50, generator=g, dtype=torch.float64),
        (torch.rand(300, 49, generator=g) - 0.6).clamp(min=0),  # sparse codes
        (torch.arange(100) % 3 == 0).float()[None].repeat(2, 1),  # tied maxima
        torch.zeros(2, 6, dtype=torch.float64),
    ]
    for x in cases:
        cpu = project_sparseness(x, s, l2=1.0)
        with force_sync_free():
            free = project_sparseness(x, s, l2=1.0)
            again = project_sparseness(x, s, l2=1.0)
        assert torch.equal(free, again)  # deterministic
        if s in (0.0, 1.0):
            assert torch.equal(free, cpu)
        # (The CPU method iterates in float32 for float32 rows: its rounding.)
        atol = 1e-12 if x.dtype == torch.float64 else 1e-5
        torch.testing.assert_close(free, cpu, rtol=0, atol=atol)


def test_sync_free_projection_per_row_targets():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 30, generator=g, dtype=torch.float64) * 5
    l2 = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    target = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64)
    with force_sync_free():
        p, probe = probed(project_l1_l2, x, l1_for_sparseness(target, 30, l2), l2)
    assert probe.syncs == []
    torch.testing.assert_close(hoyer(p), target, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.linalg.vector_norm(p, dim=1), l2)


# -- Hoyer's projected gradient --------------------------------------------------
@pytest.mark.parametrize("per_row", [False, True])
def test_pg_step_no_sync(problem, per_row):
    W, H, X = problem
    if per_row:  # the codes: one problem per sample, best-scale line search
        U, G, B, s, bound = cone_project(W, 0.4), H @ H.mT, X @ H.mT, 0.4, 160
    else:  # the atoms, Jacobi-preconditioned
        U, G, B, s, bound = cone_project(H, 0.5), W.mT @ W, W.mT @ X, 0.5, 102
    run = {"per_row": per_row, "rescale": per_row}
    with force_sync_free():
        (U1, step, obj), probe = probed(pg_steps, U, G, B, s, None, 1, **run)
        _, probe3 = probed(pg_steps, U, G, B, s, None, 3, **run)
    assert probe.syncs == [] and probe3.syncs == []
    # One call with one step (157 and 100 kernels when written, the codes'
    # starting step size by squarings included; with the CPU projection and
    # eigvalsh 187 and 202, and 7 and 8 syncs), and every further step (97
    # and 85; with the CPU projection 175 and 187).
    assert probe.kernels <= bound
    assert (probe3.kernels - probe.kernels) / 2 <= (99 if per_row else 87)
    # The same step as with the CPU's projection, up to rounding.
    U_cpu, step_cpu, obj_cpu = pg_steps(U, G, B, s, None, 1, **run)
    torch.testing.assert_close(U1, U_cpu, rtol=0, atol=1e-12)
    torch.testing.assert_close(step, step_cpu, rtol=1e-13, atol=0)
    torch.testing.assert_close(obj, obj_cpu, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hoyer(U1), torch.full_like(hoyer(U1), s))


# -- the online step ---------------------------------------------------------------
def _state(H, G, B, sparseness_H=None):
    state = OnlineNMF.start(H, sparseness_H)
    state.A += 0.1 * G / 200
    state.B += 0.1 * B / 200
    state.weight = 10.0
    return state


def test_online_update_and_balance_no_sync(problem):
    W, H, X = problem
    state = _state(H, W.mT @ W, W.mT @ X)
    (cost, change), probe = probed(update_atoms, state, W[:50], X[:50], rho=0.9)
    assert probe.syncs == []
    assert probe.kernels <= 74  # 71 when written (66 and 4 syncs before)
    assert torch.is_tensor(cost) and torch.is_tensor(change)
    d, probe = probed(balance_atoms, state)
    assert probe.syncs == []
    assert probe.kernels <= 40  # 38 when written (29 and 1 sync before)
    state = _state(cone_project(H, 0.5), W.mT @ W, W.mT @ X, 0.5)
    with force_sync_free():
        _, probe = probed(
            update_atoms, state, W[:50], X[:50], rho=0.9, sparseness_H=0.5
        )
    assert probe.syncs == []
    assert probe.kernels <= 140  # 133 when written (254 and 13 syncs before)
    torch.testing.assert_close(
        hoyer(state.H), torch.full((10,), 0.5, dtype=torch.float64)
    )


# The step's own kernels when written: 106, 132 and 78 (before: 95, 229 and
# 73, with 5, 12 and 5 syncs).
@pytest.mark.parametrize(
    "params, bound",
    [
        ({}, 110),
        ({"sparseness_W": 0.4, "sparseness_H": 0.5}, 138),
        ({"l1_reg_W": 0.1}, 82),
    ],
)
def test_minibatch_step_no_sync(problem, params, bound, monkeypatch):
    # With tol=0 (no convergence test in the codes' solver) a whole step,
    # codes included, reads nothing back.
    W, H, X = problem
    state = OnlineNMF.start(H, params.get("sparseness_H"))
    with force_sync_free():
        minibatch_step(state, X[:50], rho=0.9, tol=0, code_max_iter=5, **params)
        out, probe = probed(
            minibatch_step, state, X[50:100], rho=0.9, tol=0, code_max_iter=5, **params
        )
    assert probe.syncs == []
    assert all(torch.is_tensor(v) and v.dim() == 0 for v in out[1:])
    # The step less the codes' solver (not counted here): its own kernels.
    codes = out[0]
    monkeypatch.setattr(_online, "solve_codes", lambda *a, **k: (codes, 0))
    with force_sync_free():
        _, probe = probed(minibatch_step, state, X[50:100], rho=0.9, **params)
    assert probe.syncs == []
    assert probe.kernels <= bound


def test_multilayer_step_no_sync(problem):
    W, H, X = problem
    g = torch.Generator().manual_seed(5)
    states = [OnlineNMF.start(H), OnlineNMF.start(torch.rand(4, 10, generator=g))]
    states[1] = OnlineNMF.start(states[1].H.double())
    multilayer_step(states, X[:50], rho=0.9, tol=0, code_max_iter=5)
    out, probe = probed(
        multilayer_step, states, X[50:100], rho=0.9, tol=0, code_max_iter=5
    )
    assert probe.syncs == []
    assert all(torch.is_tensor(v) and v.dim() == 0 for v in out[1:])


def _reference_step(state, W, X, *, rho, l1_reg_W=0.0):
    """The online step as it was before issue 16 (HALS atoms, codes given):
    Python floats read at every step, dead components as None."""
    b = W.shape[0]
    op = DataOperator(X)
    WtW, WtX = W.mT @ W, op.rmatmul(W).mT
    H_old = state.H
    cost = float(gram_half_sq_error(op.half_sq_norm(), WtX, H_old, WtW))
    past = rho * state.weight
    total = past + b
    state.A.mul_(past / total).add_(WtW, alpha=1.0 / total)
    state.B.mul_(past / total).add_(WtX, alpha=1.0 / total)
    state.weight = total
    update = factor_update(solver="cd", sparseness=None, codes=False)
    dead = dead_components(state.A)
    dead = dead if bool(dead.any()) else None
    A, B = state.A, state.B
    if dead is not None:
        live = (~dead).to(A.dtype)
        A, B = A * live.unsqueeze(1) * live.unsqueeze(0), B * live.unsqueeze(1)
    H, _ = update(H_old, A, B, n_inner_sweeps(op.shape[1], b, H_old.shape[0]))
    if dead is not None:
        H = torch.where(dead.unsqueeze(1), H_old, H)
    state.H = H.contiguous()
    norm = torch.linalg.vector_norm(state.H)
    diff = torch.linalg.vector_norm(state.H - H_old)
    change = float(diff / norm) if float(norm) > 0 else 0.0
    fit = max(cost, 0.0)
    if not l1_reg_W:
        # balance_atoms as it was
        norms = torch.linalg.vector_norm(state.H, dim=1)
        rms = torch.diagonal(state.A).clamp(min=0).sqrt()
        live = (norms > 0) & (rms > 0)
        if dead is not None:
            live = live & ~dead
        target = torch.where(live, torch.sqrt(norms * rms), 0.0)
        if dead is not None:
            typical = torch.sqrt(target.square().sum() / live.sum().clamp(min=1))
            target = torch.where(dead & (norms > 0), typical, target)
        ratio = torch.where(
            target > 0, norms / torch.where(target > 0, target, 1.0), 1.0
        )
        d = torch.exp2(torch.round(torch.log2(ratio)))
        state.H = (state.H / d.unsqueeze(1)).contiguous()
        state.A = state.A * d.unsqueeze(1) * d.unsqueeze(0)
        state.B = state.B * d.unsqueeze(1)
    objective = fit
    if l1_reg_W:
        objective += float(l1_reg_W * W.sum())
    return fit, objective, change


@pytest.mark.parametrize("l1_reg_W", [0.0, 0.1])
def test_online_steps_bitwise_as_before(problem, l1_reg_W, monkeypatch):
    # A component whose codes vanish (dead) from the third step on, when the
    # past is forgotten (rho = 0).
    W, H, X = problem
    W = W.clone()
    W[100:, 3] = 0.0
    new, ref = OnlineNMF.start(H), OnlineNMF.start(H)
    for i in range(4):
        rows, rho = slice(50 * i, 50 * (i + 1)), 0.5 if i < 2 else 0.0
        codes = W[rows]
        monkeypatch.setattr(_online, "solve_codes", lambda *a, c=codes, **k: (c, 0))
        _, fit, objective, change = minibatch_step(
            new, X[rows], rho=rho, l1_reg_W=l1_reg_W
        )
        expected = _reference_step(ref, W[rows], X[rows], rho=rho, l1_reg_W=l1_reg_W)
        assert (float(fit), float(objective), float(change)) == expected
        for name in ("H", "A", "B"):
            assert torch.equal(getattr(new, name), getattr(ref, name))
    assert bool(dead_components(new.A).any())


def test_run_passes_reads_once_per_check(monkeypatch):
    # The step's figures stay tensors; run_passes reads them in one go per
    # stopping-rule check (every step with tol > 0), none with tol = 0 but
    # the data-fit terms at the end; the outcome is the one of float figures.
    reads = []
    real_read = _online._read
    monkeypatch.setattr(
        _online, "_read", lambda *v: reads.append(len(v)) or real_read(*v)
    )
    costs = [5.0, 4.0, 3.0] + [6.0] * 22
    batches = lambda: [torch.zeros(2, 3)] * 5  # noqa: E731

    def stepper(as_tensor):
        it = iter(costs)

        def step(X):
            c = next(it)
            if as_tensor:
                f64 = torch.float64
                return (
                    torch.tensor(c, dtype=f64),
                    torch.tensor(0.5),
                    torch.tensor(c / 2, dtype=f64),
                )
            return c, 0.5, c / 2

        return step

    run = {"n_samples": 10, "max_iter": 5}
    floats = run_passes(batches, stepper(False), tol=1e-3, **run)
    reads.clear()
    tensors = run_passes(batches, stepper(True), tol=1e-3, **run)
    assert tensors == floats and tensors[2]  # stopped by the rule
    assert reads == [2] * tensors[1] + [5]  # cost and change per step, fits once
    reads.clear()
    costs[:] = [3.0] * 10
    out = run_passes(batches, stepper(True), tol=0, n_samples=10, max_iter=2)
    assert out == (2, 10, False, 7.5, 10)
    assert reads == [5]


# -- multilayer fine-tuning ---------------------------------------------------------
def _reference_fine_tune(X, W, layers, *, max_iter, tol, **targets):
    """fine_tune as it was before issue 16: the loss read at every sweep."""
    sc, atoms_targets = (
        targets.get("sparseness_codes"),
        targets.get("sparseness_components", [None] * len(layers)),
    )
    op = DataOperator(X)
    n, m = op.shape
    half_sq_X = op.half_sq_norm()
    Wt, layers, _ = _balance(W.mT.contiguous(), layers)
    inner_W = n_inner_sweeps(n, m, Wt.shape[0])
    inner_H = n_inner_sweeps(m, n, layers[0].shape[0])
    update_W = factor_update(solver="cd", sparseness=sc, codes=True, rescale=False)
    update_H = factor_update(solver="cd", sparseness=atoms_targets[0], codes=False)
    C = effective_atoms(layers)[-1]
    S = Wt @ Wt.mT
    loss = gram_half_sq_error(half_sq_X, op.atoms_product_t(C), Wt, C @ C.mT, S)
    curve = [float(loss)]
    plateau = ErrorPlateau(tol, _error(curve[0]), stop_at_zero=False)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (returned)
        grams, cross = _layer_grams(op, Wt, S, layers)
        B, BBt = _update_layers(layers, grams, cross, update_H, inner_H, atoms_targets)
        Bt = op.atoms_product_t(B)
        Wt, _ = update_W(Wt, BBt, Bt, inner_W)
        S = Wt @ Wt.mT
        curve.append(float(gram_half_sq_error(half_sq_X, Bt, Wt, BBt, S)))
        Wt, layers, scale = _balance(Wt, layers)
        S = S * (scale * scale)
        if tol > 0 and plateau(_error(curve[-1])):
            break
    return Wt.mT.contiguous(), layers, curve, n_iter


@pytest.fixture
def stack(problem):
    W, H, X = problem
    g = torch.Generator().manual_seed(7)
    layers = [H.clone(), torch.rand(4, 10, generator=g, dtype=torch.float64)]
    return X, torch.rand(200, 4, generator=g, dtype=torch.float64), layers


SPARSE = {"sparseness_codes": 0.3, "sparseness_components": [0.5, 0.3]}


@pytest.mark.parametrize("targets", [{}, SPARSE])
@pytest.mark.parametrize("tol", [0.0, 1e-3])
def test_fine_tune_bitwise_as_before(stack, targets, tol):
    X, W, layers = stack
    new = fine_tune(X, W, layers, max_iter=30, tol=tol, **targets)
    ref = _reference_fine_tune(X, W, layers, max_iter=30, tol=tol, **targets)
    assert new[2] == ref[2] and new[3] == ref[3]
    assert torch.equal(new[0], ref[0])
    assert all(torch.equal(a, b) for a, b in zip(new[1], ref[1]))
    if tol:
        assert new[3] < 30  # the stopping rule ended it


def test_fine_tune_no_sync_per_sweep(stack):
    X, W, layers = stack
    with force_sync_free():
        _, one = probed(fine_tune, X, W, layers, max_iter=1, tol=0, **SPARSE)
        _, three = probed(fine_tune, X, W, layers, max_iter=3, tol=0, **SPARSE)
        # With a stopping rule: one read of the loss per sweep (the check),
        # and one of the first loss.
        out, checked = probed(fine_tune, X, W, layers, max_iter=3, tol=1e-12, **SPARSE)
    assert one.syncs == [] and three.syncs == []
    assert checked.syncs == ["aten._local_scalar_dense"] * (1 + out[3])
    # Kernels of one sweep (Hoyer's projected gradient for W and H_1, the
    # accelerated projected gradient for H_2, its step size by squarings):
    # 2458 when written (3085 with the CPU projection, which syncs).
    assert (three.kernels - one.kernels) / 2 <= 2500


def test_monotone_apg_and_balance_no_sync(stack):
    X, W, layers = stack
    g = torch.Generator().manual_seed(2)
    P = torch.rand(4, 4, generator=g, dtype=torch.float64)
    Q = torch.rand(10, 10, generator=g, dtype=torch.float64)
    N = torch.rand(4, 10, generator=g, dtype=torch.float64)
    for sparseness, bound in [(None, 34), (0.3, 101)]:
        quad = TwoSidedQuadratic(P @ P.mT, Q @ Q.mT, N, sparseness)
        with force_sync_free():
            _, one = probed(monotone_apg, quad, layers[1], 1)
            _, two = probed(monotone_apg, quad, layers[1], 2)
        assert one.syncs == [] and two.syncs == []
        # One step: 32 kernels without target, 97 with (151 with the CPU
        # projection).
        assert two.kernels - one.kernels <= bound
    _, probe = probed(_balance, W.mT.contiguous(), layers)
    assert probe.syncs == [] and probe.kernels <= 36  # 34 when written


def test_perron_bound_is_the_top_eigenvalue():
    # The sync-free step size of monotone_apg: the top eigenvalue of a Gram
    # matrix of non-negative factors, to rounding (eigvalsh waits for a GPU).
    g = torch.Generator().manual_seed(4)
    for shape in [(4, 10), (30, 100), (100, 30)]:
        A = torch.rand(*shape, generator=g, dtype=torch.float64)
        G = A @ A.mT
        G[1] = G[:, 1] = 0.0  # a dead component
        bound, probe = probed(perron_bound, G)
        assert probe.syncs == []
        top = torch.linalg.eigvalsh(G)[-1]
        torch.testing.assert_close(bound, top, rtol=1e-13, atol=0)


def test_sync_free_fine_tune_matches_cpu(stack):
    # The sync-free variants (sort-based projection, power-iteration step
    # sizes) change the arithmetic, not the result beyond rounding.
    X, W, layers = stack
    for targets in ({}, SPARSE):
        ref = fine_tune(X, W, layers, max_iter=10, tol=0, **targets)
        with force_sync_free():
            new = fine_tune(X, W, layers, max_iter=10, tol=0, **targets)
        torch.testing.assert_close(new[2], ref[2], rtol=1e-12, atol=0)
        torch.testing.assert_close(new[0], ref[0], rtol=1e-9, atol=1e-12)
