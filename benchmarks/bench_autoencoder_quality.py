"""NonnegativeSparseAutoencoder against NCAE's recorded MNIST figures (k = 100).

Protocol: n_components=100, sparsity="kl", sparsity_target=0.05,
nonnegativity="projection", max_iter=30, random_state=0, every other parameter
at its default; fitted on the first 20 000 MNIST training digits and evaluated
on the 10 000 test digits, for sparsity_weight in {1e-3, 1e-2, 1e-1, 1}.
The NCAE row (Hosseini-Asl et al., 2016) is the published anchor.

    python benchmarks/bench_autoencoder_quality.py [--quick]
"""

import argparse
import os
import time
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

from skpart import NonnegativeSparseAutoencoder
from skpart.datasets import load_mnist
from skpart.metrics import dilation_error, hoyer_sparsity, reconstruction_error

REPO = Path(__file__).resolve().parents[1]
DATA = os.environ.get("SKPART_DATA", str(REPO.parent / "shared" / "data"))
NCAE = {"mse": 0.00977, "hoyer": 0.354, "dilation": 0.176, "negative": "~1/3"}
WEIGHTS = (1e-3, 1e-2, 1e-1, 1.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 000 / 1 000 digits, 3 epochs"
    )
    args = parser.parse_args()
    X, _ = load_mnist(data_home=DATA, split="train", download=False)
    X_test, _ = load_mnist(data_home=DATA, split="test", download=False)
    n_train, n_test, max_iter = (2000, 1000, 3) if args.quick else (20000, 10000, 30)
    X, X_test = X[:n_train], X_test[:n_test]

    lines = [
        f"# Autoencoder quality on MNIST (k = 100, {n_train} train / {n_test} test"
        f" digits, {max_iter} epochs)",
        "",
        "| model | sparsity_weight | test MSE | code Hoyer | dilation error "
        "| negative decoder weights | epochs | fit time (s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| NCAE (published) | - | {NCAE['mse']} | {NCAE['hoyer']} | "
        f"{NCAE['dilation']} | {NCAE['negative']} | - | - |",
    ]
    print("\n".join(lines), flush=True)
    for beta in WEIGHTS:
        ae = NonnegativeSparseAutoencoder(
            n_components=100,
            sparsity="kl",
            sparsity_target=0.05,
            sparsity_weight=beta,
            nonnegativity="projection",
            max_iter=max_iter,
            random_state=0,
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ae.fit(X)
        fit_time = time.perf_counter() - t0
        mse = reconstruction_error(ae, X_test)
        hoyer = hoyer_sparsity(ae.transform(X_test), axis=1)
        dil = dilation_error(ae, X_test, image_shape=(28, 28))
        neg = float((ae.components_ < 0).mean())
        beats = mse < NCAE["mse"] and hoyer > NCAE["hoyer"] and dil < NCAE["dilation"]
        line = (
            f"| skpart{' (beats NCAE)' if beats and neg == 0 else ''} | {beta:g} | "
            f"{mse:.5f} | {hoyer:.3f} | {dil:.4f} | {neg:.3f} | {ae.n_iter_} | "
            f"{fit_time:.0f} |"
        )
        lines.append(line)
        print(line, flush=True)
    text = "\n".join(lines) + "\n"
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = "bench_autoencoder_quality" + ("_quick" if args.quick else "")
    (out / f"{name}.md").write_text(text)


if __name__ == "__main__":
    main()
