"""
Swapping scikit-learn's NMF for SparseNMF
=========================================

:class:`~skpart.SparseNMF` takes the parameters of
:class:`sklearn.decomposition.NMF` under the same names, with the same
defaults, and fits the same objective; it only adds the sparseness
constraints. An existing script changes in one line:

.. code-block:: diff

    -from sklearn.decomposition import NMF
    +from skpart import SparseNMF as NMF

This example runs the same script with each class, on the same data and with
the same parameters, and compares the fit time, the number of iterations, the
training error (``reconstruction_err_``), the test reconstruction error and
the accuracy of an SVC on the codes.

It runs on scikit-learn's bundled 8x8 digits, or on 10 000 MNIST training
digits when ``SKPART_DATA`` points at a folder holding ``mnist/``.
``SKPART_QUICK=1`` shrinks the data and the iteration counts for a smoke run.

On MNIST (``SKPART_DATA`` set) the script draws the figure below. Figures
further down, if any, come from the run that built this page.

.. image:: /_static/swap_sklearn_nmf.png
   :alt: swap sklearn nmf on MNIST
"""

# sphinx_gallery_thumbnail_path = '_static/swap_sklearn_nmf.png'

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
from sklearn.svm import SVC

from skpart.datasets import load_mnist
from skpart.metrics import reconstruction_error

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
    n_train=500 if QUICK else 10_000, n_test=200 if QUICK else 2000
)
k = 50 if name == "MNIST" else 25
print(f"{name}: {len(X_train)} training / {len(X_test)} test digits, k = {k}")

# %%
# The script, once per class
# --------------------------
# ``existing_script`` is what a user already has; only the class it receives
# changes. In a real script the change is the import line shown above.


def existing_script(NMF):
    """A typical NMF workflow: fit, encode, classify the codes."""
    model = NMF(
        n_components=k,
        init="nndsvda",
        max_iter=20 if QUICK else 200,
        tol=1e-4,
        random_state=0,
    )
    t0 = time.perf_counter()
    codes = model.fit_transform(X_train)
    fit_time = time.perf_counter() - t0
    accuracy = SVC().fit(codes, y_train).score(model.transform(X_test), y_test)
    return {
        "fit_transform s": fit_time,
        "n_iter_": model.n_iter_,
        "reconstruction_err_": model.reconstruction_err_,
        "test MSE": reconstruction_error(model, X_test),
        "SVC accuracy": accuracy,
        "components_": model.components_,
    }


from sklearn.decomposition import NMF

sklearn_run = existing_script(NMF)

from skpart import SparseNMF as NMF  # the one-line change

skpart_run = existing_script(NMF)

# %%
# The comparison
# --------------
# Both classes stop on the same tolerance, but ``SparseNMF``'s HALS solver
# sweeps the components several times per pass over the data and tests
# convergence every 10 iterations, so the iteration counts differ; the errors
# should be close.

runs = {"sklearn.decomposition.NMF": sklearn_run, "skpart.SparseNMF": skpart_run}
keys = ["fit_transform s", "n_iter_", "reconstruction_err_", "test MSE", "SVC accuracy"]
formats = {"fit_transform s": ".1f", "n_iter_": "d", "reconstruction_err_": ".1f"}
formats.update({"test MSE": ".5f", "SVC accuracy": ".3f"})
print(f"{'':26s}" + "".join(f"{key:>21s}" for key in keys))
for label, run in runs.items():
    print(f"{label:26s}" + "".join(f"{run[key]:21{formats[key]}}" for key in keys))
speed_up = sklearn_run["fit_transform s"] / skpart_run["fit_transform s"]
print(f"speed-up of fit_transform: {speed_up:.2f}x")

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
labels = ["sklearn NMF", "SparseNMF"]
# The bars carry the numbers as the table above rounds them, so that a caption
# can quote them.
panels = {
    "fit_transform s": "%.1f",
    "reconstruction_err_": "%.1f",
    "SVC accuracy": "%.3f",
}
for ax, (key, fmt) in zip(axes, panels.items()):
    values = [run[key] for run in runs.values()]
    bars = ax.bar(labels, values, color=["tab:gray", "tab:blue"])
    ax.bar_label(bars, fmt=fmt, fontsize=8)
    ax.set_title(key, fontsize=10)
    ax.set_ylim(0, max(values) * 1.2)
fig.suptitle(f"The same script with each class ({name}, k = {k})")
fig.tight_layout()
fig.savefig(OUTPUT / "swap_sklearn_nmf.png", dpi=100)
print(f"figure saved to {OUTPUT / 'swap_sklearn_nmf.png'}")
plt.show()
