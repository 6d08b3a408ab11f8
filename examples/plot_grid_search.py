"""
Tuning sparseness against accuracy with GridSearchCV
====================================================

A part-based model is rarely the end of a pipeline: its codes feed a
classifier. This example puts each skpart estimator in a
:class:`~sklearn.pipeline.Pipeline` in front of an
:class:`~sklearn.svm.SVC`, searches its sparseness setting with
:class:`~sklearn.model_selection.GridSearchCV`, and records three scores per
candidate at once: the classification accuracy, the Hoyer sparseness of the
codes (:func:`~skpart.metrics.hoyer_scorer`) and the negative reconstruction
error (:func:`~skpart.metrics.reconstruction_scorer`). ``refit="accuracy"``
keeps the most accurate candidate. The plot of accuracy against sparseness over
the grid is the trade-off a user tunes.

It runs on scikit-learn's bundled 8x8 digits, or on 3 000 MNIST training
digits when ``SKPART_DATA`` points at a folder holding ``mnist/``.
``SKPART_QUICK=1`` shrinks the data and the iteration counts for a smoke run.

On MNIST (``SKPART_DATA`` set) the script draws the figure below. Figures
further down, if any, come from the run that built this page.

.. image:: /_static/grid_search_tradeoff.png
   :alt: grid search tradeoff on MNIST
"""

# sphinx_gallery_thumbnail_path = '_static/grid_search_tradeoff.png'

# %%
# Data
# ----
# The loader is the same in every example: MNIST when ``SKPART_DATA`` has it,
# else the digits, with pixel values in [0, 1].

import os
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF
from skpart.datasets import load_mnist
from skpart.metrics import hoyer_scorer, reconstruction_scorer

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
    n_train=600 if QUICK else 3000, n_test=300 if QUICK else 2000
)
mnist = name == "MNIST"
k = 49 if mnist else 25
print(f"{name}: {len(X_train)} training / {len(X_test)} test digits, k = {k}")

# %%
# One search per estimator
# ------------------------
# Each grid moves the one knob that trades reconstruction for sparseness: the
# code sparseness of the NMF models (a hard constraint) and the weight of the
# autoencoder's sparsity penalty. ``None`` is the unconstrained model.

it = 20 if QUICK else 200
searches = {
    "SparseNMF": (
        SparseNMF(k, max_iter=it, random_state=0),
        {"model__sparseness_codes": [None, 0.3, 0.5, 0.7]},
    ),
    "MultilayerNMF": (
        MultilayerNMF((2 * k, k), max_iter=it, fine_tune_iter=it // 4, random_state=0),
        {"model__sparseness_codes": [None, 0.5, 0.7]},
    ),
    "NonnegativeSparseAutoencoder": (
        NonnegativeSparseAutoencoder(k, max_iter=3 if QUICK else 30, random_state=0),
        {"model__sparsity_weight": [1e-3, 1e-2, 1e-1]},
    ),
}
scoring = {
    "accuracy": "accuracy",
    "hoyer": hoyer_scorer,
    "reconstruction": reconstruction_scorer,
}

results = {}
for label, (model, grid) in searches.items():
    search = GridSearchCV(
        Pipeline([("model", model), ("svc", SVC())]),
        grid,
        scoring=scoring,
        refit="accuracy",
        cv=2 if QUICK else 3,
    )
    t0 = time.perf_counter()
    search.fit(X_train, y_train)
    elapsed = time.perf_counter() - t0
    results[label] = search
    (param,) = grid
    cv = search.cv_results_
    print(f"\n{label}: {len(cv['params'])} candidates in {elapsed:.1f} s")
    short = param.split("__")[1]
    print(f"  {short:>18s} {'accuracy':>9s} {'Hoyer':>6s} {'rec. MSE':>9s}")
    for i, params in enumerate(cv["params"]):
        print(
            f"  {params[param]!s:>18s} {cv['mean_test_accuracy'][i]:9.3f} "
            f"{cv['mean_test_hoyer'][i]:6.3f} "
            f"{-cv['mean_test_reconstruction'][i]:9.5f}"
        )
    print(
        f"  refit on accuracy: {search.best_params_[param]!s}, "
        f"test accuracy {search.score(X_test, y_test):.3f}"
    )

# %%
# The trade-off
# -------------
# Each curve is one estimator's grid; the star marks the candidate that
# ``refit="accuracy"`` chose. Unconstrained NMF codes are already fairly sparse
# (about 0.6 on MNIST): on MNIST the most accurate SVC came from codes held
# *denser* (0.3), and every step towards sparser codes cost accuracy. A strong
# sparsity penalty costs the autoencoder both: its codes are driven towards the
# target mean activation, which flattens them.

fig, ax = plt.subplots(figsize=(6.4, 4.4))
for (label, search), marker in zip(results.items(), "osD"):
    cv = search.cv_results_
    (param,) = searches[label][1]
    x, y = cv["mean_test_hoyer"], cv["mean_test_accuracy"]
    (line,) = ax.plot(x, y, marker=marker, label=label)
    for xi, yi, params in zip(x, y, cv["params"]):
        ax.annotate(
            str(params[param]),
            (xi, yi),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    best = search.best_index_
    ax.plot(x[best], y[best], "*", ms=16, color=line.get_color(), mec="k")
ax.set_xlabel("Hoyer sparseness of the codes (cross-validated)")
ax.set_ylabel("SVC accuracy (cross-validated)")
ax.set_title(f"Accuracy against sparseness over the grid ({name})")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUTPUT / "grid_search_tradeoff.png", dpi=100)
print(f"\nfigure saved to {OUTPUT / 'grid_search_tradeoff.png'}")
plt.show()
