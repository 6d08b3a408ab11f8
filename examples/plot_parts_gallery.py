"""
Parts gallery: the atoms of every model side by side
====================================================

People choose a part-based method by looking at its atoms. This example fits,
on the same digits,

- scikit-learn's :class:`~sklearn.decomposition.NMF` (the reference),
- :class:`~skpart.SparseNMF` with atoms of Hoyer sparseness 0.6, 0.75 and 0.9,
- :class:`~skpart.NonnegativeSparseAutoencoder` without any constraint
  (``sparsity=None, nonnegativity=None``) and with its defaults (non-negative
  decoder by projection, KL sparsity penalty),
- :class:`~skpart.MultilayerNMF` with two layers, whose effective atoms
  ``H_2 H_1`` live in pixel space,

and shows their first atoms in one figure and their reconstructions of ten
test digits in another. It prints the test reconstruction error, the Hoyer
sparseness of the atoms and of the codes, and the fit time of each model.

It runs on scikit-learn's bundled 8x8 digits, or on 5 000 MNIST training
digits when ``SKPART_DATA`` points at a folder holding ``mnist/``.
``SKPART_QUICK=1`` shrinks the data and the iteration counts for a smoke run.

On MNIST (``SKPART_DATA`` set) the script draws the figures below. Figures
further down, if any, come from the run that built this page.

.. image:: /_static/parts_gallery_atoms.png
   :alt: parts gallery atoms on MNIST

.. image:: /_static/parts_gallery_reconstructions.png
   :alt: parts gallery reconstructions on MNIST
"""

# sphinx_gallery_thumbnail_path = '_static/parts_gallery_atoms.png'

# %%
# Data
# ----

import os
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF
from skpart.datasets import load_mnist
from skpart.metrics import hoyer_sparsity, reconstruction_error

QUICK = os.environ.get("SKPART_QUICK", "") not in ("", "0")
try:
    HERE = Path(__file__).resolve().parent
except NameError:  # sphinx-gallery runs the examples from their folder
    HERE = Path.cwd()
OUTPUT = Path(os.environ.get("SKPART_OUTPUT", HERE / "output"))
OUTPUT.mkdir(parents=True, exist_ok=True)
# Small iteration counts are deliberate here; the warnings would only add noise.
warnings.filterwarnings("ignore", category=ConvergenceWarning)


def load_data(n_train, n_test):
    """MNIST if SKPART_DATA holds mnist/, else sklearn's digits; values in [0, 1]."""
    home = os.environ.get("SKPART_DATA")
    if home and (Path(home) / "mnist").is_dir():
        X, y = load_mnist(data_home=home, split="train", download=False)
        X_te, y_te = load_mnist(data_home=home, split="test", download=False)
        shape = (28, 28)
        return "MNIST", X[:n_train], y[:n_train], X_te[:n_test], y_te[:n_test], shape
    X, y = load_digits(return_X_y=True)
    X, X_te, y, y_te = train_test_split(
        (X / 16).astype(np.float32), y, test_size=0.3, random_state=0, stratify=y
    )
    return "digits", X[:n_train], y[:n_train], X_te[:n_test], y_te[:n_test], (8, 8)


name, X_train, y_train, X_test, y_test, image_shape = load_data(
    n_train=500 if QUICK else 5000, n_test=200 if QUICK else 2000
)
mnist = name == "MNIST"
k = 49 if mnist else 25
print(f"{name}: {len(X_train)} training / {len(X_test)} test digits, k = {k}")

# %%
# The models
# ----------

it = 20 if QUICK else 200
epochs = 3 if QUICK else 30
models = {
    "sklearn NMF": NMF(k, init="nndsvda", max_iter=it, random_state=0),
    "SparseNMF, atoms 0.6": SparseNMF(
        k, sparseness_components=0.6, max_iter=it, random_state=0
    ),
    "SparseNMF, atoms 0.75": SparseNMF(
        k, sparseness_components=0.75, max_iter=it, random_state=0
    ),
    "SparseNMF, atoms 0.9": SparseNMF(
        k, sparseness_components=0.9, max_iter=it, random_state=0
    ),
    "Autoencoder, unconstrained": NonnegativeSparseAutoencoder(
        k, sparsity=None, nonnegativity=None, max_iter=epochs, random_state=0
    ),
    "Autoencoder, projection + KL": NonnegativeSparseAutoencoder(
        k, max_iter=epochs, random_state=0
    ),
    f"MultilayerNMF ({2 * k}, {k})": MultilayerNMF(
        (2 * k, k), max_iter=it, fine_tune_iter=it // 2, random_state=0
    ),
}

print(
    f"{'model':30s} {'test MSE':>9s} {'atom Hoyer':>10s} {'code Hoyer':>10s} "
    f"{'fit s':>6s}"
)
for label, model in models.items():
    t0 = time.perf_counter()
    model.fit(X_train)
    fit_time = time.perf_counter() - t0
    print(
        f"{label:30s} {reconstruction_error(model, X_test):9.5f} "
        f"{hoyer_sparsity(model.components_):10.3f} "
        f"{hoyer_sparsity(model.transform(X_test)):10.3f} {fit_time:6.1f}"
    )

# %%
# The atoms
# ---------
# One row per model, its first 12 atoms, each scaled to its own range. On
# MNIST, unconstrained NMF with 49 atoms already learns very sparse atoms (Hoyer
# sparseness about 0.88): blobs of a few pixels. The sparseness constraint sets
# the size of the parts: 0.6 gives whole, blurred digits, 0.75 strokes, 0.9
# blobs again. The unconstrained autoencoder's decoder weights take both signs
# and are holistic; projection onto non-negative weights plus the KL penalty
# turns them into strokes. The two-layer model's effective atoms are
# non-negative mixtures of its first layer's atoms, here mostly blobs too.

n_show = 12
fig, axes = plt.subplots(
    len(models), n_show, figsize=(n_show * 0.8, len(models) * 0.95), squeeze=False
)
for row, (label, model) in zip(axes, models.items()):
    for j, ax in enumerate(row):
        ax.imshow(model.components_[j].reshape(image_shape), cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(
        label.replace(", ", ",\n"), fontsize=7, rotation=0, ha="right", va="center"
    )
fig.suptitle(f"First {n_show} atoms of each model ({name})")
fig.tight_layout()
fig.savefig(OUTPUT / "parts_gallery_atoms.png", dpi=80)
plt.show()

# %%
# Reconstructions of ten test digits
# ----------------------------------
# ``inverse_transform(transform(X))`` for every model; the first row is the
# data.

digits = X_test[:10]
rows = {"data": digits}
rows.update(
    {label: m.inverse_transform(m.transform(digits)) for label, m in models.items()}
)
fig, axes = plt.subplots(
    len(rows), 10, figsize=(10 * 0.8, len(rows) * 0.95), squeeze=False
)
for row, (label, images) in zip(axes, rows.items()):
    for ax, image in zip(row, images):
        ax.imshow(image.reshape(image_shape), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(
        label.replace(", ", ",\n"), fontsize=7, rotation=0, ha="right", va="center"
    )
fig.suptitle(f"Reconstructions of ten test digits ({name})")
fig.tight_layout()
fig.savefig(OUTPUT / "parts_gallery_reconstructions.png", dpi=80)
print(f"figures saved to {OUTPUT}")
plt.show()
