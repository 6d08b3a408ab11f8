"""The autoencoder's training step on the CPU: no host synchronisation, a
bounded number of operations, the results of the plain training loop."""

import contextlib
import itertools

import pytest
import torch

from skpart._core._autoencoder import (
    History,
    Objective,
    SparseAutoencoder,
    TrainingStep,
    _gather,
    initialize_autoencoder,
    make_optimizer,
    train,
)
from skpart._core._device import make_generator, randperm
from skpart._core._losses import (
    asymmetric_decay,
    decay_term,
    mse_loss,
    sparsity_penalty,
    sparsity_term,
)
from skpart.utils._dispatch_probe import DispatchProbe

SPARSITY = ["kl", "l2", "epsilon_l1", "log", None]
NONNEGATIVITY = ["projection", "asymmetric_decay", None]
SOLVERS = ["adam", "sgd"]

#: Operations that launch work (DispatchProbe.kernels) in one Adam step and
#: the gathering of its batch, by (sparsity, nonnegativity), measured with
#: torch 2.13; an SGD step has one fewer (Adam also counts its steps). The
#: mini-batch loop of before (single-tensor optimisers, the penalties
#: differentiated through their formulas, one clamp per constrained weight,
#: three accumulators) took 97 for ("kl", "projection") with Adam, and 4 host
#: syncs.
KERNELS = {
    ("kl", "projection"): 51,
    ("kl", "asymmetric_decay"): 64,
    ("kl", None): 50,
    ("l2", "projection"): 36,
    ("l2", "asymmetric_decay"): 49,
    ("l2", None): 35,
    ("epsilon_l1", "projection"): 41,
    ("epsilon_l1", "asymmetric_decay"): 54,
    ("epsilon_l1", None): 40,
    ("log", "projection"): 40,
    ("log", "asymmetric_decay"): 53,
    ("log", None): 39,
    (None, "projection"): 25,
    (None, "asymmetric_decay"): 38,
    (None, None): 24,
}


@pytest.fixture(scope="module")
def X():
    """100 rows of sklearn's digits in [0, 1] (float64, 64 features)."""
    from sklearn.datasets import load_digits

    return torch.from_numpy(load_digits().data[:100] / 16.0)


def _objective(sparsity, nonnegativity, **kw):
    return Objective(
        sparsity=sparsity,
        nonnegativity=nonnegativity,
        decay_weight=1e-3 if nonnegativity == "asymmetric_decay" else 0.0,
        decay_ratio=0.1,
        **kw,
    )


def _setup(X, sparsity, nonnegativity, solver, **kw):
    """A module, its objective and optimiser and the step, as ``train`` makes
    them."""
    module = SparseAutoencoder(X.shape[1], 8, dtype=X.dtype, device=X.device)
    initialize_autoencoder(module, X, "glorot_uniform", generator=make_generator(0))
    objective = _objective(sparsity, nonnegativity, **kw)
    objective.project(module)
    optimizer = make_optimizer(module, solver, 1e-2)
    step = TrainingStep(
        module, optimizer, objective, batch_size=16, device=X.device, cuda_graph=True
    )
    return module, optimizer, objective, step


def _probed_step(step, X, perm):
    """Run one step (batch gathered from the permutation) under the probe."""
    with DispatchProbe() as probe:
        step(_gather(X, perm, 16, 32))
    return probe


# -- no host synchronisation in a step ----------------------------------------------


@pytest.mark.parametrize(
    "sparsity, nonnegativity, solver",
    list(itertools.product(SPARSITY, NONNEGATIVITY, SOLVERS)),
)
def test_step_dispatches_no_host_sync(X, sparsity, nonnegativity, solver):
    module, _, _, step = _setup(X, sparsity, nonnegativity, solver)
    step.acc = torch.zeros(3, dtype=X.dtype)
    perm = randperm(X.shape[0], make_generator(0), device=X.device)
    before = module.decoder_weight.detach().clone()
    first = _probed_step(step, X, perm)  # creates the optimiser state
    second = _probed_step(step, X, perm)
    assert first.syncs == []
    assert second.syncs == []
    # Guard: the probe saw a real training step.
    assert second.ops["aten.mm"] >= 2
    assert not torch.equal(module.decoder_weight, before)


@pytest.mark.parametrize("solver", SOLVERS)
def test_step_with_bce_and_nonnegative_encoder_dispatches_no_host_sync(X, solver):
    _, _, _, step = _setup(
        X, "kl", "projection", solver, loss="bce", nonnegative_encoder=True
    )
    step.acc = torch.zeros(3, dtype=X.dtype)
    perm = randperm(X.shape[0], make_generator(0), device=X.device)
    _probed_step(step, X, perm)
    probe = _probed_step(step, X, perm)
    assert probe.syncs == []
    assert probe.ops["aten.binary_cross_entropy_with_logits"] == 1


# -- the number of operations in a step ----------------------------------------------


@pytest.mark.parametrize(
    "sparsity, nonnegativity, solver",
    list(itertools.product(SPARSITY, NONNEGATIVITY, SOLVERS)),
)
def test_step_operation_count(X, sparsity, nonnegativity, solver):
    _, _, _, step = _setup(X, sparsity, nonnegativity, solver)
    step.acc = torch.zeros(3, dtype=X.dtype)
    perm = randperm(X.shape[0], make_generator(0), device=X.device)
    _probed_step(step, X, perm)
    probe = _probed_step(step, X, perm)
    expected = KERNELS[sparsity, nonnegativity] - (solver == "sgd")
    assert probe.kernels <= expected
    # The fused optimiser updates all four parameters in one operation; the
    # projection clips every constrained weight in one.
    fused = "aten._fused_adam_" if solver == "adam" else "aten._fused_sgd_"
    assert probe.ops[fused] == 1
    assert probe.ops["aten._foreach_clamp_min_"] == (nonnegativity == "projection")
    assert probe.ops["aten.clamp_"] == 0
    # Guard against a probe that sees too little: every penalty and the
    # backward pass are in the count.
    assert probe.kernels >= expected - 2


# -- one synchronisation per epoch ---------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n", [64, 650])
def test_epoch_reads_the_device_once(X, monkeypatch, solver, n):
    """A whole epoch reads one tensor back to the host (its statistics and
    the weights' check), however many batches it has."""
    Xn = X.repeat(7, 1)[:n]
    module, optimizer, objective, _ = _setup(Xn, "kl", "projection", solver)
    reads = []
    tolist = torch.Tensor.tolist

    def counting_tolist(self):
        reads.append(self.shape)
        return tolist(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counting_tolist)
    history = History()
    with DispatchProbe() as probe:
        train(
            module, optimizer, objective, Xn, history=history, max_iter=3,
            batch_size=16, solver=solver, generator=make_generator(0),
        )  # fmt: skip
    assert history.n_iter == 3
    assert probe.syncs == []
    assert reads == [torch.Size([4])] * 3
    # Guard: the epochs ran every batch (the last one ragged for n=650).
    assert probe.ops["aten.mm"] == 3 * 3 * -(-n // 16)


# -- the same results as the plain loop ----------------------------------------------


def _reference_epoch(module, optimizer, objective, X, batch_size, perm):
    """The mini-batch loop as written before the step function."""
    n = X.shape[0]
    acc = torch.zeros(3, dtype=X.dtype)
    for start in range(0, n, batch_size):
        xb = X[perm[start : start + batch_size]]
        optimizer.zero_grad(set_to_none=True)
        total, rec, H = objective(module, xb)
        total.backward()
        optimizer.step()
        if objective.nonnegativity == "projection":
            with torch.no_grad():
                for w in objective.constrained(module):
                    w.clamp_(min=0)
        with torch.no_grad():
            nb = xb.shape[0]
            acc[0].add_(total.detach(), alpha=nb)
            acc[1].add_(rec.detach(), alpha=nb)
            acc[2].add_(H.detach().mean(), alpha=nb)
    return acc / n


def _reference_train(module, optimizer, objective, X, n_epochs, batch_size):
    generator = make_generator(0)
    curve = []
    for _ in range(n_epochs):
        perm = randperm(X.shape[0], generator, device=X.device)
        stats = _reference_epoch(module, optimizer, objective, X, batch_size, perm)
        curve.append(stats[0].item())
    return curve


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("nonnegativity", NONNEGATIVITY)
@pytest.mark.parametrize("nonnegative_encoder", [False, True])
def test_train_equals_the_plain_loop(X, solver, nonnegativity, nonnegative_encoder):
    """``train`` (the step function, ragged last batch included: 100 rows in
    batches of 16) gives bitwise the parameters and loss curve of the plain
    loop with the same optimiser."""
    kw = {"nonnegative_encoder": nonnegative_encoder}
    module, optimizer, objective, _ = _setup(X, "kl", nonnegativity, solver, **kw)
    ref_module, ref_optimizer, ref_objective, _ = _setup(
        X, "kl", nonnegativity, solver, **kw
    )
    start = module.decoder_weight.detach().clone()
    history = train(
        module, optimizer, objective, X, history=History(), max_iter=3,
        batch_size=16, solver=solver, generator=make_generator(0), tol=-1.0,
    )  # fmt: skip
    curve = _reference_train(ref_module, ref_optimizer, ref_objective, X, 3, 16)
    assert history.loss_curve == curve
    for name, p in module.named_parameters():
        assert torch.equal(p, getattr(ref_module, name)), name
    # Guard: training moved the weights.
    assert not torch.equal(module.decoder_weight, start)


class _PlainObjective(Objective):
    """The objective as written before: the penalties differentiated by
    autograd through their formulas."""

    def __call__(self, module, X):
        H, Z = module(X)
        rec = mse_loss(module._g(Z), X)
        total = rec
        if self.sparsity is not None and self.sparsity_weight > 0:
            t = H.mean(dim=0)
            penalty = sparsity_penalty(
                self.sparsity, t, self.sparsity_target, self.epsilon
            )
            total = total + self.sparsity_weight * penalty
        if self.nonnegativity == "asymmetric_decay" and self.decay_weight > 0:
            for w in self.constrained(module):
                decay = asymmetric_decay(
                    w, self.decay_ratio, self.decay_norm, self.epsilon
                )
                total = total + self.decay_weight * decay
        return total, rec, H


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("sparsity", SPARSITY)
@pytest.mark.parametrize("nonnegativity", NONNEGATIVITY)
def test_train_follows_the_plain_formulas_and_optimisers(
    X, solver, sparsity, nonnegativity
):
    """``train`` (fused optimisers, closed-form penalty gradients) takes the
    steps of the loop written with torch's single-tensor optimisers and the
    penalties differentiated by autograd, to rounding."""
    module, optimizer, objective, _ = _setup(X, sparsity, nonnegativity, solver)
    ref_module, _, _, _ = _setup(X, sparsity, nonnegativity, solver)
    ref_objective = _PlainObjective(**vars(objective))
    start = module.decoder_weight.detach().clone()
    params = list(ref_module.parameters())
    if solver == "adam":
        ref_optimizer = torch.optim.Adam(params, lr=1e-2, foreach=False)
    else:
        ref_optimizer = torch.optim.SGD(params, lr=1e-2, momentum=0.9, foreach=False)
    history = train(
        module, optimizer, objective, X, history=History(), max_iter=3,
        batch_size=16, solver=solver, generator=make_generator(0), tol=-1.0,
    )  # fmt: skip
    curve = _reference_train(ref_module, ref_optimizer, ref_objective, X, 3, 16)
    torch.testing.assert_close(
        torch.tensor(history.loss_curve), torch.tensor(curve), rtol=1e-12, atol=0
    )
    for name, p in module.named_parameters():
        ref = getattr(ref_module, name)
        torch.testing.assert_close(p, ref, rtol=1e-10, atol=1e-12)
    # Guard: training moved the weights.
    assert (module.decoder_weight - start).abs().max() > 1e-4


# -- the penalties' closed-form gradients ---------------------------------------------


@pytest.mark.parametrize("kind", ["kl", "l2", "epsilon_l1", "log"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sparsity_term_value_and_gradient_match_the_formula(kind, dtype):
    """Codes whose unit means span (0, 1), with a unit at exactly 0 and one at
    1 (where the KL divergence's clamp binds: no gradient)."""
    gen = torch.Generator().manual_seed(0)
    H = torch.rand(16, 6, generator=gen, dtype=torch.float64) ** 3
    H[:, 0], H[:, 5] = 0.0, 1.0
    H = H.to(dtype).requires_grad_()
    p, weight, eps = 0.05, 0.3, 1e-6
    value = sparsity_term(H, kind, p, weight, eps)
    (grad,) = torch.autograd.grad(value, H)
    ref_value = weight * sparsity_penalty(kind, H.mean(dim=0), p, eps)
    (ref_grad,) = torch.autograd.grad(ref_value, H)
    assert torch.equal(value, ref_value)  # the same operations
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(grad, ref_grad, rtol=rtol, atol=0)
    # Guard: a real gradient, zero at the clamped KL units only.
    assert (grad[:, 1:5].abs() > 0).all()
    if kind == "kl":
        assert (grad[:, [0, 5]] == 0).all()


@pytest.mark.parametrize("norm", ["l2", "l1", "l1_l2"])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_decay_term_value_and_gradient_match_the_formula(norm, ratio):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    w[0, 0] = 0.0
    w.requires_grad_()
    value = decay_term(w, 0.7, ratio, norm, 1e-6)
    (grad,) = torch.autograd.grad(value, w)
    ref_value = 0.7 * asymmetric_decay(w, ratio, norm, 1e-6)
    (ref_grad,) = torch.autograd.grad(ref_value, w)
    assert torch.equal(value, ref_value)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=0)
    # Guard: the negative weights are pushed up.
    assert (grad[w < 0] < 0).all()


def test_train_is_deterministic(X):
    """Same seed, bitwise the same weights and loss curve."""
    runs = []
    for _ in range(2):
        module, optimizer, objective, _ = _setup(X, "kl", "projection", "adam")
        history = train(
            module, optimizer, objective, X, history=History(), max_iter=2,
            batch_size=16, generator=make_generator(0),
        )  # fmt: skip
        runs.append((history.loss_curve, [p.detach() for p in module.parameters()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        assert torch.equal(a, b)


def test_cuda_graph_flag_is_inert_on_the_cpu(X):
    """``cuda_graph`` only matters on CUDA: the CPU steps run eagerly."""
    curves = []
    for cuda_graph in (True, False):
        module, optimizer, objective, _ = _setup(X, "kl", "projection", "adam")
        history = train(
            module, optimizer, objective, X, history=History(), max_iter=2,
            batch_size=16, generator=make_generator(0), cuda_graph=cuda_graph,
        )  # fmt: skip
        curves.append(history.loss_curve)
    assert curves[0] == curves[1]
    step = TrainingStep(
        module, optimizer, objective, batch_size=16, device=X.device, cuda_graph=True
    )
    assert not step.use_graph


# -- the CUDA graph's control flow, simulated on the CPU ------------------------------


class _SimulatedCuda:
    """Stand-ins for the CUDA stream and graph API with a real graph's
    semantics: a capture records the step without changing any tensor (the
    step runs, then the parameters, the optimiser state and the sums are put
    back), and a replay runs the recorded step on the static batch."""

    def __init__(self, monkeypatch):
        self.step, self.replays, self.captures = None, 0, 0
        self.flags_in_capture = None
        sim = self

        class Stream:
            def __init__(self, *args, **kwargs):
                pass

            def wait_stream(self, other):
                pass

        class Graph:
            def replay(self):
                sim.replays += 1
                sim.step(sim.step._static_x)

        class Capture:
            def __init__(self, graph):
                pass

            def __enter__(self):
                sim.captures += 1
                groups = sim.step.optimizer.param_groups
                sim.flags_in_capture = [g.get("capturable") for g in groups]
                self.saved = [t.detach().clone() for t in sim.tensors()]

            def __exit__(self, *args):
                with torch.no_grad():
                    for t, saved in zip(sim.tensors(), self.saved):
                        t.copy_(saved)
                return False

        monkeypatch.setattr(torch.cuda, "Stream", Stream)
        monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: Stream())
        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(torch.cuda, "graph", Capture)

    def tensors(self):
        step = self.step
        out = [*step.module.parameters(), step.acc]
        for state in step.optimizer.state.values():
            out += [v for v in state.values() if torch.is_tensor(v)]
        return out


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n", [96, 100])
def test_simulated_graph_steps_equal_the_eager_steps(X, monkeypatch, solver, n):
    """The warm-up, capture, replay and ragged-batch logic of TrainingStep,
    run on the CPU with a simulated CUDA graph: 3 epochs of 6 full batches of
    16 (and, for 100 rows, a ragged batch of 4) give bitwise the eager
    training, with 3 warm-up steps, one capture and 15 replays."""
    sim = _SimulatedCuda(monkeypatch)
    Xn = X[:n]
    results = []
    for use_graph in (True, False):
        module, _, _, step = _setup(Xn, "kl", "projection", solver)
        step.use_graph = use_graph
        sim.step = step
        generator = make_generator(0)
        stats = [
            step.epoch(Xn, randperm(n, generator, device=Xn.device)) for _ in range(3)
        ]
        results.append((stats, [p.detach().clone() for p in module.parameters()]))
        if use_graph:
            assert step.graph is not None
            assert (sim.captures, sim.replays) == (1, 3 * 6 - TrainingStep.WARMUP)
            # Adam is flagged capturable for the capture only.
            assert sim.flags_in_capture == [True if solver == "adam" else None]
            assert all(not g.get("capturable") for g in step.optimizer.param_groups)
    (graph_stats, graph_params), (eager_stats, eager_params) = results
    assert sim.replays == 3 * 6 - TrainingStep.WARMUP  # none in the eager run
    for a, b in zip(graph_stats, eager_stats):
        assert torch.equal(a, b)
    for a, b in zip(graph_params, eager_params):
        assert torch.equal(a, b)


def test_simulated_failed_capture_runs_the_eager_steps(X, monkeypatch):
    sim = _SimulatedCuda(monkeypatch)

    class RefusedCapture:
        def __init__(self, graph):
            pass

        def __enter__(self):
            raise RuntimeError("operation not permitted when stream is capturing")

        def __exit__(self, *args):
            return False

    monkeypatch.setattr(torch.cuda, "graph", RefusedCapture)
    results = []
    for use_graph in (True, False):
        module, _, _, step = _setup(X, "kl", "projection", "adam")
        step.use_graph = use_graph
        sim.step = step
        generator = make_generator(0)
        for _ in range(2):
            step.epoch(X, randperm(X.shape[0], generator, device=X.device))
        results.append([p.detach().clone() for p in module.parameters()])
        assert step.graph is None and not step.use_graph
    assert sim.replays == 0
    assert all(not g["capturable"] for g in step.optimizer.param_groups)
    for a, b in zip(*results):
        assert torch.equal(a, b)
