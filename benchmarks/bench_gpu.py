"""GPU speed-ups: SparseNMF and the autoencoder on CUDA vs the CPU and vs sklearn.

Run on a machine with a CUDA GPU (needs ``SKPART_DATA``)::

    python benchmarks/bench_gpu.py            # 60 000 MNIST digits, k = 100
    python benchmarks/bench_gpu.py --quick    # 10 000 digits, k = 50

SparseNMF: sklearn's ``NMF(solver="cd", init="nndsvda", tol=0, max_iter=100)``
is timed on this machine's CPU and its final error noted; SparseNMF (same init
and rank) is then fitted with the fewest iterations that reach that error on
each device (doubling, then bisection, as in ``bench_sparse_nmf_speed.py``), and
the time of that fit is reported (init and validation included; results come
back to NumPy, so the times include the GPU's work). The autoencoder: seconds
per epoch of ``fit`` on each device.
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning

from skpart import NonnegativeSparseAutoencoder, SparseNMF
from skpart.datasets import load_mnist

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_sparse_nmf_speed import iterations_to_reach  # noqa: E402

DATA = os.environ.get("SKPART_DATA", str(HERE.parents[1] / "shared" / "data"))
OUT = Path(os.environ.get("SKPART_BENCH_OUT", HERE / "results"))


def timed(make, X):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make().fit(X)
    return time.perf_counter() - t0, model


def time_to_reach(kw, X, target, device, repeat=2):
    """Fewest iterations for SparseNMF on ``device`` to reach ``target`` (the
    speed benchmark's doubling and bisection), and the best time of that fit."""
    it = iterations_to_reach(X, kw, target, 400, device)
    if it is None:
        return None, None
    make = lambda: SparseNMF(max_iter=it, random_state=0, device=device, **kw)  # noqa: E731
    return it, min(timed(make, X)[0] for _ in range(repeat))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, k = (10_000, 50) if args.quick else (60_000, 100)
    X, _ = load_mnist(data_home=DATA, split="train", download=False)
    X = X[:n]
    lines = [
        f"# GPU benchmark: {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU "
        f"cores, torch {torch.__version__}, MNIST {n} x 784 float32, k = {k}",
        "",
    ]

    kw = dict(n_components=k, init="nndsvda", solver="cd", tol=0)
    t_sk, sk = timed(lambda: NMF(max_iter=100, random_state=0, **kw), X)
    target = sk.reconstruction_err_
    rows = [("sklearn NMF cd (CPU)", 100, t_sk)]
    for device in ("cuda", "cpu"):
        # Warm-up (CUDA context, kernels), not timed.
        SparseNMF(max_iter=2, random_state=0, device=device, **kw).fit(X[:1000])
        it, t = time_to_reach(kw, X, target, device)
        rows.append((f"SparseNMF cd ({device})", it, t))
    lines += [
        f"SparseNMF: time to reach sklearn's error after 100 cd iterations "
        f"({target:.2f})",
        "",
        "| model | iterations | seconds | speed-up vs sklearn |",
        "|---|---|---|---|",
    ]
    for label, it, t in rows:
        ratio = "-" if t is None else f"{t_sk / t:.1f}x"
        lines.append(
            f"| {label} | {it} | {t if t is None else round(t, 3)} | {ratio} |"
        )

    lines += ["", "Autoencoder: seconds per epoch (k = 100, batch 64, Adam)", ""]
    lines += ["| device | s / epoch |", "|---|---|"]
    per_epoch = {}
    for device in ("cuda", "cpu"):
        make = lambda d=device: NonnegativeSparseAutoencoder(  # noqa: E731
            100, max_iter=2, random_state=0, device=d
        )
        timed(
            lambda d=device: NonnegativeSparseAutoencoder(
                100, max_iter=1, random_state=0, device=d
            ),
            X[:2000],
        )
        t, _ = timed(make, X)
        per_epoch[device] = t / 2
        lines.append(f"| {device} | {t / 2:.3f} |")
    lines.append("")
    lines.append(
        f"Autoencoder GPU speed-up over this machine's CPU: "
        f"{per_epoch['cpu'] / per_epoch['cuda']:.1f}x"
    )
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / ("bench_gpu_quick.md" if args.quick else "bench_gpu.md")).write_text(
        text + "\n"
    )


if __name__ == "__main__":
    main()
