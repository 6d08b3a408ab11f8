"""
Starting an autoencoder from an NMF
===================================

:class:`~skpart.NonnegativeSparseAutoencoder` can start from random weights
(``"glorot_uniform"``, ``"he_normal"``, ``"orthogonal"``, ``"normal"``) or
from a non-negative factorisation: ``"nmf"`` takes the decoder from an NMF of
the training data and the matching pseudo-inverse encoder, ``"nmf_identity"``
factorises the identity matrix into non-negative encoder and decoder factors.
This example trains one model per ``weight_init`` epoch by epoch with
:meth:`~skpart.NonnegativeSparseAutoencoder.partial_fit` and plots the
validation reconstruction error over the first epochs.

It runs on scikit-learn's bundled 8x8 digits, or on 3 000 MNIST training
digits (2 700 to train, 300 to validate) when ``SKPART_DATA`` points at a
folder holding ``mnist/``. ``SKPART_QUICK=1`` shrinks the data and the number
of epochs for a smoke run.

On MNIST (``SKPART_DATA`` set) the script draws the figure below. Figures
further down, if any, come from the run that built this page.

.. image:: /_static/autoencoder_init.png
   :alt: autoencoder init on MNIST
"""

# sphinx_gallery_thumbnail_path = '_static/autoencoder_init.png'

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
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skpart import NonnegativeSparseAutoencoder
from skpart.datasets import load_mnist

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


name, X, _, _, _, image_shape = load_data(n_train=600 if QUICK else 3000, n_test=0)
n_val = len(X) // 10
X_train, X_val = X[n_val:], X[:n_val]
mnist = name == "MNIST"
k = 100 if mnist else 36
print(f"{name}: {len(X_train)} training / {len(X_val)} validation digits, k = {k}")

# %%
# One model per initialisation
# ----------------------------
# ``partial_fit`` runs one epoch per call and keeps the optimiser state, so the
# validation error can be read after every epoch. Every other parameter keeps
# its default (Adam, KL sparsity penalty, non-negative decoder by projection).

inits = ["glorot_uniform", "he_normal", "orthogonal", "normal", "nmf", "nmf_identity"]
n_epochs = 2 if QUICK else 10
curves, times = {}, {}
for init in inits:
    ae = NonnegativeSparseAutoencoder(k, weight_init=init, random_state=0)
    t0 = time.perf_counter()
    curve = []
    for _ in range(n_epochs):
        ae.partial_fit(X_train)
        curve.append(-ae.score(X_val))  # score is the negative MSE per pixel
    curves[init], times[init] = curve, time.perf_counter() - t0

shown = [e for e in (1, 2, 5, 10) if e <= n_epochs]
print(
    f"{'weight_init':15s} "
    + " ".join(f"{'epoch ' + str(e):>9s}" for e in shown)
    + f" {'seconds':>8s}"
)
for init, curve in curves.items():
    print(
        f"{init:15s} "
        + " ".join(f"{curve[e - 1]:9.5f}" for e in shown)
        + f" {times[init]:8.1f}"
    )

# %%
# Validation curves
# -----------------
# The NMF start begins where a random start arrives only after many epochs:
# its decoder already holds the data's parts.

fig, ax = plt.subplots(figsize=(6.4, 4.2))
epochs = np.arange(1, n_epochs + 1)
for init, curve in curves.items():
    ax.plot(
        epochs,
        curve,
        marker="o",
        ms=3,
        label=init,
        lw=2.5 if init.startswith("nmf") else 1.2,
    )
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("validation MSE per pixel")
ax.set_title(f"Autoencoder initialisations, k = {k} ({name})")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUTPUT / "autoencoder_init.png", dpi=100)
print(f"figure saved to {OUTPUT / 'autoencoder_init.png'}")
plt.show()
