"""
Quickstart: part-based models side by side
==========================================

Fits every skpart estimator and scikit-learn's :class:`~sklearn.decomposition.NMF`
as the reference on the same digits, then prints one table (reconstruction
error, Hoyer sparseness of the codes, accuracy of an SVC trained on the codes,
fit time) and saves the learned atoms as a PNG: one grid of enlarged atoms per
model.

Every model runs until its stopping rule holds, so the run prints no
convergence warning: the iteration caps are only safety nets.

It runs on scikit-learn's bundled 8x8 digits, with no download. When the
environment variable ``SKPART_DATA`` points at a folder holding ``mnist/`` (the
IDX files), it runs on 3 000 MNIST training digits instead. Set
``SKPART_QUICK=1`` for a smoke run on fewer digits.
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
        n = 1000 if QUICK else 3000
        return "MNIST", X[:n], y[:n], (28, 28)
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    if QUICK:
        X, y = X[:900], y[:900]
    return "digits", (X / 16.0).astype(np.float32), y, (8, 8)


def models(k, n_features):
    """Factories of the reference and the skpart models.

    The caps are set above the iterations each model needs on this data, with
    the default tolerances, except for the autoencoder: its training objective
    creeps down for hundreds of epochs, so it stops once an epoch improves the
    mean squared error per pixel by less than 1e-4 (``tol``) five times running.
    """
    return {
        "sklearn NMF": lambda: NMF(k, init="nndsvda", max_iter=2000, random_state=0),
        "SparseNMF": lambda: SparseNMF(
            k, init="nndsvda", max_iter=1000, random_state=0
        ),
        "SparseNMF (atoms 0.7)": lambda: SparseNMF(
            k, init="nndsvda", sparseness_components=0.7, max_iter=1000, random_state=0
        ),
        "MultilayerNMF": lambda: MultilayerNMF(
            (min(2 * k, n_features), k),
            max_iter=1000,
            fine_tune_iter=1000,
            random_state=0,
        ),
        "NonnegativeSparseAutoencoder": lambda: NonnegativeSparseAutoencoder(
            k,
            batch_size=128,
            learning_rate_init=1e-2,
            tol=1e-4,
            n_iter_no_change=5,
            max_iter=1000,
            random_state=0,
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
    for label, make in models(k, X.shape[1]).items():
        t0 = time.perf_counter()
        model = make().fit(X_train)
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
    save_atoms(atoms, image_shape, f"{name}, k = {k}", OUTPUT / "quickstart_atoms.png")


def tile(comps, image_shape):
    """The atoms as one mosaic, each scaled to its peak, NaN lines between them.

    Small atoms are enlarged (each pixel repeated) to about 24 pixels a side
    first, so that the lines between them stay thin.
    """
    zoom = max(1, int(np.ceil(24 / image_shape[0])))
    h, w = image_shape[0] * zoom, image_shape[1] * zoom
    n_cols = int(np.ceil(np.sqrt(len(comps))))
    n_rows = int(np.ceil(len(comps) / n_cols))
    mosaic = np.full((n_rows * (h + 1) - 1, n_cols * (w + 1) - 1), np.nan)
    for i, atom in enumerate(comps):
        r, c = divmod(i, n_cols)
        peak = np.abs(atom).max()
        image = np.kron(atom.reshape(image_shape), np.ones((zoom, zoom)))
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = (
            image / peak if peak > 0 else image
        )
    return mosaic


def save_atoms(atoms, image_shape, title, path):
    """Save every model's atoms as a grid of enlarged images (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure (pip install 'skpart[plot]')")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    n_cols = 3
    n_rows = len(atoms) // n_cols + 1  # the last free cell holds the colour bar
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(3.3 * n_cols, 3.5 * n_rows),
        squeeze=False,
        layout="constrained",
    )
    # Blue lines between the atoms, so that an atom's zeros are not the gaps.
    cmap = plt.get_cmap("gray_r").with_extremes(bad="lightsteelblue")
    for ax, (label, comps) in zip(axes.flat, atoms.items()):
        # One colour scale for every atom of every model: each atom divided by
        # its largest entry, so 1 is an atom's peak and 0 is zero.
        shown = ax.imshow(
            tile(comps, image_shape), cmap=cmap, vmin=0, vmax=1, interpolation="nearest"
        )
        ax.set_title(label, fontsize=10)
        ax.set_axis_off()
    for ax in axes.flat[len(atoms) :]:
        ax.set_axis_off()
    cax = axes.flat[-1].inset_axes([0.1, 0.1, 0.08, 0.8])
    fig.colorbar(shown, cax=cax, label="fraction of the atom's peak value")
    fig.suptitle(
        f"The {len(comps)} atoms (rows of components_) of each model ({title})"
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"atoms saved to {path}")


if __name__ == "__main__":
    main()
