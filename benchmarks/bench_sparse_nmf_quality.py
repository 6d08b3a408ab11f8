"""SparseNMF against the recorded Sparse-NMF anchor on MNIST.

Anchor (Hoyer constraint, k = 100, evaluated on the 10 000 test digits):
reconstruction MSE 0.0109, code Hoyer sparseness 0.663, max-approximation-to-
dilation error 0.059. SparseNMF is fitted on the first 20 000 training digits
with ``sparseness_codes=0.663`` and evaluated with ``transform`` on the test
digits.

    python benchmarks/bench_sparse_nmf_quality.py [--alpha-W 0.00085 --max-iter 800
        --tol 1e-6 --sparseness-components S --init INIT --out FILE]

Each run prints its table; ``results/bench_sparse_nmf_quality.md`` collects
the runs made so far.
"""

import argparse
import os
import time
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

from skpart import SparseNMF
from skpart.datasets import load_mnist
from skpart.metrics import dilation_error, hoyer_sparsity, reconstruction_error

HERE = Path(__file__).resolve().parent
DATA = os.environ.get("SKPART_DATA", str(HERE.parents[1] / "shared" / "data"))
ANCHOR = {"mse": 0.0109, "sparseness": 0.663, "dilation": 0.059}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--sparseness", type=float, default=0.663)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--shuffle", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solver", default="cd")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--init", default=None)
    parser.add_argument("--sparseness-components", type=float, default=None)
    parser.add_argument("--alpha-W", type=float, default=0.0)
    parser.add_argument("--alpha-H", type=float, default=None, help="default: same")
    parser.add_argument("--l1-ratio", type=float, default=0.0)
    parser.add_argument(
        "--out",
        default=None,
        help="also write the run's table to this file (the curated table of "
        "all runs is results/bench_sparse_nmf_quality.md)",
    )
    args = parser.parse_args()

    X_train, _ = load_mnist(data_home=DATA, split="train", download=False)
    X_test, _ = load_mnist(data_home=DATA, split="test", download=False)
    X_train, X_test = X_train[: args.n_train], X_test[: args.n_test]
    model = SparseNMF(
        args.k,
        solver=args.solver,
        sparseness_codes=args.sparseness,
        sparseness_components=args.sparseness_components,
        init=args.init,
        alpha_W=args.alpha_W,
        alpha_H="same" if args.alpha_H is None else args.alpha_H,
        l1_ratio=args.l1_ratio,
        max_iter=args.max_iter,
        tol=args.tol,
        shuffle=args.shuffle,
        random_state=args.seed,
        device=args.device,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train)
    t_fit = time.perf_counter() - t0
    got = {
        "mse": reconstruction_error(model, X_test),
        "sparseness": hoyer_sparsity(model.transform(X_test)),
        "dilation": dilation_error(model, X_test, image_shape=(28, 28)),
    }
    better = {
        "mse": got["mse"] <= ANCHOR["mse"],
        "sparseness": got["sparseness"] >= ANCHOR["sparseness"] - 1e-4,
        "dilation": got["dilation"] <= ANCHOR["dilation"],
    }
    table = (
        f"SparseNMF(k={args.k}, solver={args.solver!r}, sparseness_codes="
        f"{args.sparseness}, sparseness_components={args.sparseness_components}, "
        f"init={args.init!r}, alpha_W={args.alpha_W}, alpha_H={args.alpha_H}, "
        f"l1_ratio={args.l1_ratio}, "
        f"max_iter={args.max_iter}, tol={args.tol}, shuffle={args.shuffle}, "
        f"random_state={args.seed}) fitted on {args.n_train} "
        f"training digits in {t_fit:.1f} s ({model.n_iter_} iterations); "
        f"evaluated on {args.n_test} test digits; atoms' mean Hoyer sparseness "
        f"{hoyer_sparsity(model.components_):.3f}.\n\n"
        "| measure | anchor | SparseNMF | at least as good |\n|---|---|---|---|\n"
        + "".join(
            f"| {name} | {ANCHOR[name]} | {got[name]:.5f} | {better[name]} |\n"
            for name in ("mse", "sparseness", "dilation")
        )
    )
    print(table)
    if args.out:
        Path(args.out).write_text(
            "# SparseNMF vs the Sparse-NMF anchor (MNIST, k = 100)\n\n" + table
        )


if __name__ == "__main__":
    main()
