"""Seconds per epoch: NonnegativeSparseAutoencoder vs hand-written PyTorch and skorch.

The same model (sigmoid encoder, sigmoid decoder with non-negative weights
projected after every step, KL sparsity on the batch mean activation, mean
squared error), the same batch size (64) and optimiser (Adam, lr 3e-3) on the
60 000 MNIST training digits. Timings alternate between the three contenders
and the minimum over repeats is reported (the CPU is shared).

    python benchmarks/bench_autoencoder_speed.py [--quick]
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


def hand_written_epochs(X, n_epochs, seed=0):
    """The minimal loop a PyTorch user writes for this model."""
    g = torch.Generator().manual_seed(seed)
    n, m = X.shape
    b = (6.0 / (m + K)) ** 0.5
    We = ((torch.rand(K, m, generator=g) * 2 - 1) * b).requires_grad_()
    Wd = ((torch.rand(K, m, generator=g) * 2 - 1) * b).clamp(min=0).requires_grad_()
    be = torch.zeros(K, requires_grad=True)
    bd = torch.zeros(m, requires_grad=True)
    opt = torch.optim.Adam([We, be, Wd, bd], lr=LR)
    times = []
    for _ in range(n_epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, BATCH):
            xb = X[perm[i : i + BATCH]]
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
