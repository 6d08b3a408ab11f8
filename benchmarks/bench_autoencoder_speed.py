"""Seconds per epoch: NonnegativeSparseAutoencoder vs hand-written PyTorch and skorch.

The same model (sigmoid encoder, sigmoid decoder with non-negative weights
projected after every step, KL sparsity on the batch mean activation, mean
squared error), the same batch size (64) and optimiser (Adam, lr 3e-3) on the
60 000 MNIST training digits. Timings alternate between the three contenders
and the minimum over repeats is reported (the CPU is shared).

    python benchmarks/bench_autoencoder_speed.py [--quick]

:func:`cuda_epoch_seconds` times the same on a GPU (skpart's training loop with
and without CUDA graphs, and the hand-written loop); ``bench_gpu.py`` calls it.
"""

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from skpart import NonnegativeSparseAutoencoder
from skpart.datasets import load_mnist

REPO = Path(__file__).resolve().parents[1]
DATA = os.environ.get("SKPART_DATA", str(REPO.parent / "shared" / "data"))
K, BATCH, LR, P, BETA = 100, 64, 3e-3, 0.05, 1e-3


def hand_written_epochs(X, n_epochs, seed=0, batch_size=BATCH):
    """The minimal loop a PyTorch user writes for this model (on ``X``'s
    device; it reads its loss back after every step)."""
    g = torch.Generator().manual_seed(seed)
    n, m = X.shape
    dev = X.device
    b = (6.0 / (m + K)) ** 0.5
    We = ((torch.rand(K, m, generator=g) * 2 - 1) * b).to(dev).requires_grad_()
    Wd = ((torch.rand(K, m, generator=g) * 2 - 1) * b).clamp(min=0).to(dev)
    Wd.requires_grad_()
    be = torch.zeros(K, device=dev, requires_grad=True)
    bd = torch.zeros(m, device=dev, requires_grad=True)
    opt = torch.optim.Adam([We, be, Wd, bd], lr=LR)
    times = []
    for _ in range(n_epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g).to(dev)
        total = 0.0
        for i in range(0, n, batch_size):
            xb = X[perm[i : i + batch_size]]
            h = torch.sigmoid(xb @ We.t() + be)
            out = torch.sigmoid(h @ Wd + bd)
            t = h.mean(0).clamp(1e-7, 1 - 1e-7)
            kl = (P * torch.log(P / t) + (1 - P) * torch.log((1 - P) / (1 - t))).sum()
            loss = ((out - xb) ** 2).mean() + BETA * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                Wd.clamp_(min=0)
            total += loss.item()
        times.append(time.perf_counter() - t0)
    return times


class _StampedList(list):
    """A list that notes the time of every ``append``: the loss curve of a
    :class:`History`, appended to right after the epoch's read of the device."""

    def __init__(self):
        super().__init__()
        self.stamps = []

    def append(self, value):
        self.stamps.append(time.perf_counter())
        super().append(value)


def skpart_core_epochs(X, n_epochs, batch_size=BATCH, cuda_graph=True):
    """Per-epoch times of skpart's training loop (:func:`train`, what ``fit``
    runs) on ``X``'s device, with or without CUDA graphs. Each epoch ends with
    the loop's one read of the device, so its time includes the device's work."""
    from skpart._core._autoencoder import (
        History,
        Objective,
        SparseAutoencoder,
        initialize_autoencoder,
        make_optimizer,
        train,
    )
    from skpart._core._device import make_generator

    module = SparseAutoencoder(X.shape[1], K, dtype=X.dtype, device=X.device)
    gen = make_generator(0)
    initialize_autoencoder(module, X, "glorot_uniform", generator=gen)
    objective = Objective(sparsity_target=P, sparsity_weight=BETA)
    objective.project(module)
    optimizer = make_optimizer(module, "adam", LR)
    history = History(loss_curve=_StampedList())
    t0 = time.perf_counter()
    train(
        module, optimizer, objective, X, history=history, max_iter=n_epochs,
        batch_size=batch_size, generator=gen, tol=-np.inf, cuda_graph=cuda_graph,
    )  # fmt: skip
    return list(np.diff([t0] + history.loss_curve.stamps))


def cuda_epoch_seconds(X, batch_size=BATCH, n_epochs=3, device="cuda"):
    """Seconds per epoch on ``device``: skpart's loop replaying CUDA graphs,
    the same loop eager, and the eager hand-written loop.

    ``X`` is a float32 array or tensor (MNIST scaled to [0, 1]); each figure is
    the fastest of ``n_epochs`` epochs (the first one includes the warm-up and
    the capture). A short untimed run first sets up the device. Returns a dict
    ``{"skpart": s, "skpart eager": s, "hand-written eager": s}``.
    """
    Xt = torch.as_tensor(X, dtype=torch.float32).to(device)
    hand_written_epochs(Xt[: 4 * batch_size], 1, batch_size=batch_size)
    skpart_core_epochs(Xt[: 8 * batch_size], 1, batch_size)
    graph = skpart_core_epochs(Xt, n_epochs, batch_size, True)
    eager = skpart_core_epochs(Xt, n_epochs, batch_size, False)
    return {
        "skpart": float(min(graph)),
        "skpart eager": float(min(eager)),
        "hand-written eager": min(
            hand_written_epochs(Xt, n_epochs, batch_size=batch_size)
        ),
    }


def skpart_epochs(X_np, n_epochs):
    """Per-epoch times of the estimator (one fit of n_epochs, timed per epoch)."""
    ae = NonnegativeSparseAutoencoder(
        n_components=K,
        batch_size=BATCH,
        learning_rate_init=LR,
        sparsity_weight=BETA,
        max_iter=n_epochs,
        random_state=0,
        verbose=1,
    )
    import contextlib
    import io
    import re

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae.fit(X_np)
    stamps = [float(s) for s in re.findall(r"time = ([0-9.]+)s", buf.getvalue())]
    return list(np.diff([0.0] + stamps))


def skorch_epochs(X, n_epochs):
    """The same model wrapped in skorch (NeuralNet with a custom criterion)."""
    from skorch import NeuralNet
    from skorch.callbacks import Callback
    from skorch.dataset import ValidSplit  # noqa: F401

    class AE(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            b = (6.0 / (m + K)) ** 0.5
            self.We = torch.nn.Parameter((torch.rand(K, m) * 2 - 1) * b)
            self.be = torch.nn.Parameter(torch.zeros(K))
            self.Wd = torch.nn.Parameter(((torch.rand(K, m) * 2 - 1) * b).clamp(min=0))
            self.bd = torch.nn.Parameter(torch.zeros(m))

        def forward(self, x):
            h = torch.sigmoid(x @ self.We.t() + self.be)
            return torch.sigmoid(h @ self.Wd + self.bd), h

    class Loss(torch.nn.Module):
        def forward(self, y_pred, y_true):
            out, h = y_pred
            t = h.mean(0).clamp(1e-7, 1 - 1e-7)
            kl = (P * torch.log(P / t) + (1 - P) * torch.log((1 - P) / (1 - t))).sum()
            return ((out - y_true) ** 2).mean() + BETA * kl

    class Project(Callback):
        def on_batch_end(self, net, training=False, **kw):
            if training:
                with torch.no_grad():
                    net.module_.Wd.clamp_(min=0)

    class Timer(Callback):
        def initialize(self):
            self.times = []
            return self

        def on_epoch_begin(self, net, **kw):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, net, **kw):
            self.times.append(time.perf_counter() - self.t0)

    timer = Timer()
    net = NeuralNet(
        AE,
        module__m=X.shape[1],
        criterion=Loss,
        optimizer=torch.optim.Adam,
        lr=LR,
        batch_size=BATCH,
        max_epochs=n_epochs,
        train_split=None,
        iterator_train__shuffle=True,
        callbacks=[Project(), timer],
        verbose=0,
    )
    net.fit(X, X)
    return timer.callbacks_times if hasattr(timer, "callbacks_times") else timer.times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 000 digits, 1 repeat")
    args = parser.parse_args()
    X_np, _ = load_mnist(data_home=DATA, split="train", download=False)
    n_epochs, repeats = (2, 1) if args.quick else (3, 3)
    if args.quick:
        X_np = X_np[:10000]
    X = torch.from_numpy(X_np)
    try:
        import skorch  # noqa: F401

        have_skorch = True
    except ImportError:
        have_skorch = False

    best = {"hand-written PyTorch": np.inf, "skpart": np.inf, "skorch": np.inf}
    for _ in range(repeats):
        best["hand-written PyTorch"] = min(
            best["hand-written PyTorch"], min(hand_written_epochs(X, n_epochs))
        )
        best["skpart"] = min(best["skpart"], min(skpart_epochs(X_np, n_epochs)))
        if have_skorch:
            best["skorch"] = min(best["skorch"], min(skorch_epochs(X, n_epochs)))
    ref = best["hand-written PyTorch"]
    lines = [
        f"# Autoencoder speed: seconds per epoch on {X.shape[0]} MNIST digits",
        "",
        f"k={K}, batch_size={BATCH}, Adam lr={LR}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; min over {repeats} x {n_epochs} epochs.",
        "",
        "| implementation | s / epoch | ratio to hand-written |",
        "|---|---|---|",
    ]
    for name, t in best.items():
        if name == "skorch" and not have_skorch:
            lines.append("| skorch | not installed | - |")
        else:
            lines.append(f"| {name} | {t:.3f} | {t / ref:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_autoencoder_speed.md").write_text(text)


if __name__ == "__main__":
    main()
