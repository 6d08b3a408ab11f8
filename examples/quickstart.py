"""
Quickstart: part-based models side by side
==========================================

Fits every skpart estimator and scikit-learn's :class:`~sklearn.decomposition.NMF`
as the reference on the same digits, then prints one table (reconstruction
error, Hoyer sparseness of the codes, accuracy of an SVC trained on the codes,
fit time) and saves the learned atoms as a PNG grid.

It runs on scikit-learn's bundled 8x8 digits, with no download. When the
environment variable ``SKPART_DATA`` points at a folder holding ``mnist/`` (the
IDX files), it runs on 10 000 MNIST training digits instead. Set
``SKPART_QUICK=1`` for a fast smoke run (fewer iterations).
"""

import os
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import NMF
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF
from skpart.metrics import hoyer_sparsity, reconstruction_error

QUICK = os.environ.get("SKPART_QUICK", "") not in ("", "0")
# sphinx-gallery runs examples without __file__; then the output goes to ./output.
_HERE = Path(__file__).parent if "__file__" in globals() else Path.cwd()
OUTPUT = Path(os.environ.get("SKPART_OUTPUT", _HERE / "output"))


def load_data():
    """MNIST when SKPART_DATA has it, else sklearn's digits; values in [0, 1]."""
    home = os.environ.get("SKPART_DATA")
    if home and (Path(home) / "mnist").is_dir():
        from skpart.datasets import load_mnist

        X, y = load_mnist(data_home=home, split="train", download=False)
        n = 2000 if QUICK else 10_000
        return "MNIST", X[:n], y[:n], (28, 28)
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return "digits", (X / 16.0).astype(np.float32), y, (8, 8)


def models(k, n_features, quick, n_samples):
    """Factories of the reference and the skpart models, set for this run."""
    it = 50 if quick else 300
    # About 100 mini-batches per epoch: the 1 347 training digits need smaller
    # batches than MNIST to train the autoencoder in 30 epochs.
    batch_size = int(np.clip(n_samples // 100, 16, 64))
    return {
        "sklearn NMF": lambda: NMF(
            k, init="nndsvda", max_iter=it, tol=1e-4, random_state=0
        ),
        "SparseNMF": lambda: SparseNMF(k, init="nndsvda", max_iter=it, random_state=0),
        "SparseNMF (atoms 0.7)": lambda: SparseNMF(
            k, init="nndsvda", max_iter=it, sparseness_components=0.7, random_state=0
        ),
        "MultilayerNMF": lambda: MultilayerNMF(
            (min(2 * k, n_features), k),
            max_iter=it,
            fine_tune_iter=it // 2,
            random_state=0,
        ),
        "NonnegativeSparseAutoencoder": lambda: NonnegativeSparseAutoencoder(
            k, max_iter=5 if quick else 30, batch_size=batch_size, random_state=0
        ),
    }


def main():
    name, X, y, image_shape = load_data()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    k = 36 if name == "digits" else 49
    print(f"skpart quickstart on {name}: {len(X_train)} train / {len(X_test)} test")
    rows, atoms = [], {}
    for label, make in models(k, X.shape[1], QUICK, len(X_train)).items():
        t0 = time.perf_counter()
        try:
            model = make().fit(X_train)
        except NotImplementedError:
            print(f"  {label}: not implemented yet, skipped")
            continue
        fit_time = time.perf_counter() - t0
        codes_train, codes_test = model.transform(X_train), model.transform(X_test)
        acc = SVC().fit(codes_train, y_train).score(codes_test, y_test)
        rows.append(
            (
                label,
                reconstruction_error(model, X_test),
                hoyer_sparsity(codes_test),
                acc,
                fit_time,
            )
        )
        atoms[label] = model.components_
    header = (
        f"{'model':30s} {'rec. MSE':>9s} {'Hoyer':>6s} {'SVC acc':>8s} {'fit s':>7s}"
    )
    print(header)
    print("-" * len(header))
    for label, rec, hoy, acc, t in rows:
        print(f"{label:30s} {rec:9.5f} {hoy:6.3f} {acc:8.3f} {t:7.2f}")
    save_atoms(atoms, image_shape, OUTPUT / "quickstart_atoms.png")


def save_atoms(atoms, image_shape, path, n_show=16):
    """Save the first atoms of every model as one PNG grid (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure (pip install 'skpart[plot]')")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(
        len(atoms), n_show, figsize=(n_show * 0.7, len(atoms) * 0.8), squeeze=False
    )
    for row, (label, comps) in zip(axes, atoms.items()):
        for j, ax in enumerate(row):
            ax.set_axis_off()
            if j < len(comps):
                ax.imshow(comps[j].reshape(image_shape), cmap="gray_r")
        row[0].set_title(label, fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"atoms saved to {path}")


if __name__ == "__main__":
    main()
