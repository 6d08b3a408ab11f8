"""SparseNMF vs Hoyer's nmfsc (NumPy transcription) at sparseness_components=0.8.

2 000 MNIST digits, k = 49. Both start from the same random factors. Hoyer's
reference runs 20 iterations; SparseNMF (solver "cd" and "mu") is fitted with
an increasing number of iterations until its objective ``0.5 ||X - W H||^2`` is
at most the reference's; the time of that fit (best of ``--repeat``) is
compared with the reference's time, side by side in this process.

    python benchmarks/bench_sparse_nmf_hoyer.py [--n 2000 --k 49 --iters 20]
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skpart import SparseNMF
from skpart.datasets import load_mnist

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hoyer_nmfsc import nmfsc  # noqa: E402

DATA = os.environ.get("SKPART_DATA", str(HERE.parents[1] / "shared" / "data"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--k", type=int, default=49)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--sparseness", type=float, default=0.8)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    X, _ = load_mnist(data_home=DATA, split="train", download=False)
    X = X[: args.n].astype(np.float64)
    rng = np.random.RandomState(0)
    W0 = np.abs(rng.randn(args.n, args.k))  # codes (Hoyer's H^T)
    H0 = np.abs(rng.randn(args.k, X.shape[1]))  # atoms (Hoyer's W^T)

    t0 = time.perf_counter()
    _, _, hist = nmfsc(X.T, H0.T, W0.T, sW=args.sparseness, n_iter=args.iters)
    t_ref = time.perf_counter() - t0
    target = hist[-1]
    print(f"reference: {args.iters} iterations, objective {target:.2f}, {t_ref:.2f} s")

    rows = []
    for solver in ("cd", "mu"):
        found = None
        for it in range(1, 201):
            model = SparseNMF(
                args.k,
                init="custom",
                solver=solver,
                sparseness_components=args.sparseness,
                max_iter=it,
                tol=0,
            )
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(X, W=W0.copy(), H=H0.copy())
                times.append(time.perf_counter() - t0)
            obj = 0.5 * model.reconstruction_err_**2
            if obj <= target:
                found = (it, min(times), obj)
                break
        if found is None:
            rows.append((solver, "-", "-", "-", "not reached"))
        else:
            it, t, obj = found
            rows.append((solver, it, f"{obj:.2f}", f"{t:.3f}", f"{t_ref / t:.1f}x"))
        print(rows[-1], flush=True)

    table = (
        f"Reference nmfsc: {args.iters} iterations, objective {target:.2f}, "
        f"{t_ref:.2f} s (n={args.n}, k={args.k}, sW={args.sparseness}).\n\n"
        "| SparseNMF solver | iterations to reach | objective | seconds | speed-up |\n"
        "|---|---|---|---|---|\n"
        + "".join(f"| {s} | {i} | {o} | {t} | {r} |\n" for s, i, o, t, r in rows)
    )
    print(table)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_sparse_nmf_hoyer.md").write_text(
        "# SparseNMF vs Hoyer's nmfsc (NumPy), time to reach its 20-iteration "
        "objective\n\n" + table
    )


if __name__ == "__main__":
    main()
