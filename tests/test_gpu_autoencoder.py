"""The autoencoder's training step captured as a CUDA graph: replays train as
the eager steps do (CUDA only; skipped without a GPU).

Loading a CUDA-fitted estimator on a machine without CUDA is tested in
``test_gpu.py`` (``test_auto_device_and_cpu_loading``).
"""

import pytest
import torch

from skpart._core._autoencoder import (
    History,
    Objective,
    SparseAutoencoder,
    TrainingStep,
    initialize_autoencoder,
    make_optimizer,
    train,
)
from skpart._core._device import make_generator, randperm

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"
)

BATCH = 32


@pytest.fixture(scope="module")
def X():
    """200 of sklearn's digits in [0, 1], float32, on the GPU."""
    from sklearn.datasets import load_digits

    X = torch.from_numpy(load_digits().data[:200] / 16.0).float()
    return X.to("cuda")


@pytest.fixture
def replays(monkeypatch):
    """A list that grows by one at every replay of a CUDA graph."""
    seen = []
    replay = torch.cuda.CUDAGraph.replay

    def counting_replay(self):
        seen.append(1)
        return replay(self)

    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", counting_replay)
    return seen


def _setup(X, solver, nonnegativity):
    module = SparseAutoencoder(X.shape[1], 8, dtype=X.dtype, device=X.device)
    initialize_autoencoder(module, X, "glorot_uniform", generator=make_generator(0))
    objective = Objective(
        nonnegativity=nonnegativity,
        decay_weight=1e-3 if nonnegativity == "asymmetric_decay" else 0.0,
        decay_ratio=0.1,
    )
    objective.project(module)
    return module, make_optimizer(module, solver, 1e-2), objective


def _train(X, solver, nonnegativity, cuda_graph, n_epochs=3):
    module, optimizer, objective = _setup(X, solver, nonnegativity)
    history = train(
        module, optimizer, objective, X, history=History(), max_iter=n_epochs,
        batch_size=BATCH, solver=solver, generator=make_generator(0), tol=-1.0,
        cuda_graph=cuda_graph,
    )  # fmt: skip
    return module, history


def _assert_same_training(a, b):
    (module_a, history_a), (module_b, history_b) = a, b
    torch.testing.assert_close(
        torch.tensor(history_a.loss_curve),
        torch.tensor(history_b.loss_curve),
        rtol=1e-5,
        atol=0,
    )
    for name, p in module_a.named_parameters():
        torch.testing.assert_close(
            p, getattr(module_b, name), rtol=1e-4, atol=1e-5, msg=name
        )


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("nonnegativity", ["projection", "asymmetric_decay", None])
@pytest.mark.parametrize("n", [192, 200])
def test_graph_replays_train_as_the_eager_steps(X, replays, solver, nonnegativity, n):
    """200 rows: 6 full batches and a ragged one of 8 per epoch (eager);
    192 rows: full batches only."""
    Xn = X[:n]
    graph = _train(Xn, solver, nonnegativity, cuda_graph=True)
    n_replays = len(replays)
    eager = _train(Xn, solver, nonnegativity, cuda_graph=False)
    # 3 epochs of 6 full batches: 3 warm-up steps, then the capture and replays.
    assert n_replays == 3 * 6 - TrainingStep.WARMUP
    assert len(replays) == n_replays  # the eager run replayed nothing
    _assert_same_training(graph, eager)
    # Guard: training moved the weights and the constraint holds.
    assert graph[1].loss_curve[-1] < graph[1].loss_curve[0]
    if nonnegativity == "projection":
        assert graph[0].decoder_weight.min() >= 0


def test_epoch_after_the_capture_does_not_synchronize(X):
    """With the graph captured, an epoch (replays and the eager ragged batch)
    never waits for the device: CUDA's sync debug mode would raise."""
    module, optimizer, objective = _setup(X, "adam", "projection")
    step = TrainingStep(
        module, optimizer, objective, batch_size=BATCH, device=X.device, cuda_graph=True
    )
    generator = make_generator(0)
    step.epoch(X, randperm(X.shape[0], generator, device=X.device))
    assert step.graph is not None
    perm = randperm(X.shape[0], generator, device=X.device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = step.epoch(X, perm)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(stats).all()


def test_failed_capture_falls_back_to_eager_steps(X, replays, monkeypatch):
    class RefusedCapture:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise RuntimeError("capture refused")

        def __exit__(self, *args):
            return False

    eager = _train(X, "adam", "projection", cuda_graph=False)
    monkeypatch.setattr(torch.cuda, "graph", RefusedCapture)
    fallback = _train(X, "adam", "projection", cuda_graph=True)
    assert replays == []
    _assert_same_training(fallback, eager)
