"""Initialisation study: validation MSE after 1, 5 and 10 epochs per weight_init.

3 000 MNIST training digits, 10 % held out (the same split for every init),
every other parameter at its default (n_components=100), random_state=0.

    python benchmarks/bench_autoencoder_init.py [--quick]
"""

import argparse
import os
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skpart import NonnegativeSparseAutoencoder
from skpart.datasets import load_mnist

REPO = Path(__file__).resolve().parents[1]
DATA = os.environ.get("SKPART_DATA", str(REPO.parent / "shared" / "data"))
INITS = ("glorot_uniform", "he_normal", "orthogonal", "normal", "nmf", "nmf_identity")
EPOCHS = (1, 5, 10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 000 digits")
    args = parser.parse_args()
    X, _ = load_mnist(data_home=DATA, split="train", download=False)
    n = 1000 if args.quick else 3000
    X = X[:n]
    rng = np.random.RandomState(0)
    perm = rng.permutation(n)
    n_val = n // 10
    X_val, X_train = X[perm[:n_val]], X[perm[n_val:]]

    lines = [
        f"# Initialisation study: validation MSE on MNIST ({n - n_val} train / "
        f"{n_val} validation digits, k = 100, defaults otherwise)",
        "",
        "| weight_init | " + " | ".join(f"after {e} epochs" for e in EPOCHS) + " |",
        "|---|" + "---|" * len(EPOCHS),
    ]
    print("\n".join(lines), flush=True)
    for init in INITS:
        ae = NonnegativeSparseAutoencoder(weight_init=init, random_state=0)
        scores, done = [], 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for e in EPOCHS:
                while done < e:  # partial_fit is one epoch of fit
                    ae.partial_fit(X_train)
                    done += 1
                scores.append(-ae.score(X_val))
        line = f"| {init} | " + " | ".join(f"{s:.5f}" for s in scores) + " |"
        lines.append(line)
        print(line, flush=True)
    text = "\n".join(lines) + "\n"
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = "bench_autoencoder_init" + ("_quick" if args.quick else "")
    (out / f"{name}.md").write_text(text)


if __name__ == "__main__":
    main()
