"""Peak RSS of a fit on the full MNIST training set: SparseNMF vs sklearn NMF.

Each fit runs in a fresh subprocess, which reports its own peak resident set
size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the RSS after loading
the data (the data's share, common to both).

    python benchmarks/bench_sparse_nmf_memory.py [--n 60000 --k 100 --max-iter 20]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = os.environ.get("SKPART_DATA", str(HERE.parents[1] / "shared" / "data"))

CHILD = """
import json, resource, sys, warnings
from skpart.datasets import load_mnist
n, k, max_iter, which, solver, data = sys.argv[1:]
X, _ = load_mnist(data_home=data, split="train", download=False)
X = X[: int(n)].copy()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if which == "sklearn":
    from sklearn.decomposition import NMF as Model
else:
    from skpart import SparseNMF as Model
warnings.simplefilter("ignore")
model = Model(int(k), init="nndsvda", solver=solver, max_iter=int(max_iter))
model.fit(X)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"after_load_mib": base / 1024, "peak_mib": peak / 1024}))
"""


def run(which, args, solver):
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(args.n),
            str(args.k),
            str(args.max_iter),
            which,
            solver,
            DATA,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--solvers", nargs="+", default=["cd", "mu"])
    args = parser.parse_args()
    rows = []
    for solver in args.solvers:
        for which in ("sklearn", "skpart"):
            r = run(which, args, solver)
            rows.append((solver, which, r["after_load_mib"], r["peak_mib"]))
            print(rows[-1], flush=True)
    table = (
        f"n={args.n}, k={args.k}, max_iter={args.max_iter}, float32 MNIST.\n\n"
        "| solver | library | RSS after loading (MiB) | peak RSS (MiB) |\n"
        "|---|---|---|---|\n"
        + "".join(f"| {s} | {w} | {a:.0f} | {p:.0f} |\n" for s, w, a, p in rows)
    )
    print(table)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "bench_sparse_nmf_memory.md").write_text(
        "# Peak RSS of a fit on MNIST: SparseNMF vs sklearn NMF\n\n" + table
    )


if __name__ == "__main__":
    main()
