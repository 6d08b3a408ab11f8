"""
Max-approximation to dilation: are the atoms parts?
===================================================

A grey-scale dilation distributes over a pixel-wise maximum, not over a sum.
If an image is a sum of parts that do not overlap, sum and maximum coincide,
and dilating the image gives the same result as dilating each part and adding
them up with the same codes. :func:`~skpart.metrics.dilation_error` measures
how far a model is from that ideal. This example shows it image by image: for
a few test digits, the true dilation next to the approximation built from each
model's dilated atoms, with the per-image error in the titles.

It runs on scikit-learn's bundled 8x8 digits, or on 5 000 MNIST training
digits when ``SKPART_DATA`` points at a folder holding ``mnist/``.
``SKPART_QUICK=1`` shrinks the data and the iteration counts for a smoke run.

On MNIST (``SKPART_DATA`` set) the script draws the figure below. Figures
further down, if any, come from the run that built this page.

.. image:: /_static/dilation.png
   :alt: dilation on MNIST
"""

# sphinx_gallery_thumbnail_path = '_static/dilation.png'

# %%
# Data
# ----

import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage
from scipy.special import expit
from sklearn.datasets import load_digits
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF
from skpart.datasets import load_mnist
from skpart.metrics import dilation_error, reconstruction_error

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
# Four models
# -----------

it = 20 if QUICK else 200
models = {
    "sklearn NMF": NMF(k, init="nndsvda", max_iter=it, random_state=0),
    "SparseNMF (atoms 0.7)": SparseNMF(
        k, sparseness_components=0.7, max_iter=it, random_state=0
    ),
    "MultilayerNMF": MultilayerNMF(
        (2 * k, k), max_iter=it, fine_tune_iter=it // 2, random_state=0
    ),
    "Autoencoder": NonnegativeSparseAutoencoder(
        k, max_iter=3 if QUICK else 30, random_state=0
    ),
}
for model in models.values():
    model.fit(X_train)

# %%
# The max-approximation, by hand
# ------------------------------
# Dilate every atom with the 3x3 cross (the metric's default structuring
# element), rebuild each digit from its codes with the dilated atoms (through
# the autoencoder's decoder bias and sigmoid, which are not dilated), and
# compare with the dilated digit.

CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def dilate(rows):
    """Grey dilation of every row seen as an image."""
    images = np.asarray(rows, dtype=np.float64).reshape(-1, *image_shape)
    dilated = [ndimage.grey_dilation(image, footprint=CROSS) for image in images]
    return np.reshape(dilated, (len(images), -1))


def max_approximation(model, X):
    """Reconstruction of X from its codes with the model's dilated atoms."""
    z = model.transform(X).astype(np.float64) @ dilate(model.components_)
    if hasattr(model, "decoder_intercept_"):  # the autoencoder's decoder
        z = expit(z + model.decoder_intercept_)
    return z


true = dilate(X_test)
approx = {label: max_approximation(m, X_test) for label, m in models.items()}
print(f"{'model':24s} {'rec. MSE':>9s} {'dilation error':>14s} {'(by hand)':>10s}")
for label, model in models.items():
    by_hand = float(np.mean((true - approx[label]) ** 2))
    print(
        f"{label:24s} {reconstruction_error(model, X_test):9.5f} "
        f"{dilation_error(model, X_test, image_shape):14.4f} {by_hand:10.4f}"
    )

# %%
# Image by image
# --------------
# Rows are test digits; the columns are the digit, its true dilation, and each
# model's max-approximation, titled with its per-pixel squared error. Atoms
# that overlap add up where the true dilation takes a maximum, so their
# approximation comes out too thick and too dark: on MNIST, NMF's small
# overlapping blobs fill the hole of a zero that the strokes of SparseNMF and of
# the autoencoder leave open.

n_digits = 4
columns = ["digit", "true dilation", *models]
fig, axes = plt.subplots(
    n_digits, len(columns), figsize=(len(columns) * 1.45, n_digits * 1.55)
)
for i, row in enumerate(axes):
    images = [X_test[i], true[i], *(approx[label][i] for label in models)]
    for j, (ax, image) in enumerate(zip(row, images)):
        ax.imshow(image.reshape(image_shape), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        title = columns[j] if i == 0 else ""
        if j >= 2:
            error = np.mean((true[i] - image) ** 2)
            title = f"{title}\nerr {error:.3f}" if title else f"err {error:.3f}"
        ax.set_title(title, fontsize=7)
fig.suptitle(f"Max-approximation to dilation ({name})")
fig.tight_layout()
fig.savefig(OUTPUT / "dilation.png", dpi=80)
print(f"figure saved to {OUTPUT / 'dilation.png'}")
plt.show()
