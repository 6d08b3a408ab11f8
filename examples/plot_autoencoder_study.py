"""
Reproduction study: the sparse non-negative autoencoder
=======================================================

skpart grew out of a study of sparse autoencoders with non-negative decoder
weights (Lemme et al., 2012; Hosseini-Asl et al., 2016): how does the weight of
the sparsity penalty trade reconstruction against sparse, part-like codes?
This example sweeps ``sparsity_weight`` for two values of ``sparsity_target``
and measures, on held-out digits,

- the reconstruction error (:func:`~skpart.metrics.reconstruction_error`),
- the Hoyer sparseness of the codes (:func:`~skpart.metrics.hoyer_sparsity`),
- the accuracy of an :class:`~sklearn.svm.SVC` trained on the codes,
- the max-approximation-to-dilation error
  (:func:`~skpart.metrics.dilation_error`), low when the atoms are parts.

On MNIST the four panels carry the study's reference values as horizontal
lines: Sparse NMF (reconstruction 0.0109, Hoyer 0.663, dilation 0.059) and
NCAE (Hosseini-Asl et al., 2016: 0.00977, 0.354, 0.176). The same numbers are
printed as a table.

It runs on scikit-learn's bundled 8x8 digits (where the MNIST reference lines
are not drawn), or on 10 000 MNIST training digits and the 10 000 test digits
when ``SKPART_DATA`` points at a folder holding ``mnist/``. ``SKPART_QUICK=1``
shrinks the sweep, the data and the epochs for a smoke run.

On MNIST (``SKPART_DATA`` set) the script draws the figure below. Figures
further down, if any, come from the run that built this page.

.. image:: /_static/autoencoder_study.png
   :alt: autoencoder study on MNIST
"""

# sphinx_gallery_thumbnail_path = '_static/autoencoder_study.png'

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

from skpart import NonnegativeSparseAutoencoder
from skpart.datasets import load_mnist
from skpart.metrics import dilation_error, hoyer_sparsity, reconstruction_error

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
    n_train=500 if QUICK else 10_000, n_test=300 if QUICK else 10_000
)
mnist = name == "MNIST"
k = 100 if mnist else 36
# The SVC is trained on the codes of (at most) 5 000 training digits.
n_svc = min(len(X_train), 5000)
print(f"{name}: {len(X_train)} training / {len(X_test)} test digits, k = {k}")

# %%
# The sweep
# ---------
# Every other parameter keeps its default: KL sparsity penalty, decoder made
# non-negative by projection after every Adam step. ``sparsity_weight`` is
# scaled for a reconstruction term that is a mean over pixels (see the
# estimator's docstring): NCAE's beta = 3 is about 0.0077 here on MNIST.

weights = [1e-3, 1e-1] if QUICK else [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
targets = [0.05, 0.1]
epochs = 3 if QUICK else 30
rows = []
for target in targets:
    for weight in weights:
        ae = NonnegativeSparseAutoencoder(
            n_components=k,
            sparsity_target=target,
            sparsity_weight=weight,
            max_iter=epochs,
            random_state=0,
        )
        t0 = time.perf_counter()
        ae.fit(X_train)
        fit_time = time.perf_counter() - t0
        codes_test = ae.transform(X_test)
        svc = SVC().fit(ae.transform(X_train[:n_svc]), y_train[:n_svc])
        rows.append(
            {
                "target": target,
                "weight": weight,
                "reconstruction": reconstruction_error(ae, X_test),
                "hoyer": hoyer_sparsity(codes_test),
                "accuracy": svc.score(codes_test, y_test),
                "dilation": dilation_error(ae, X_test, image_shape),
                "fit_time": fit_time,
            }
        )

# %%
# The table
# ---------

ANCHORS = {  # MNIST reference values: reconstruction MSE, code Hoyer, dilation
    "Sparse NMF": {"reconstruction": 0.0109, "hoyer": 0.663, "dilation": 0.059},
    "NCAE": {"reconstruction": 0.00977, "hoyer": 0.354, "dilation": 0.176},
}
header = (
    f"{'model':>22s} {'target':>6s} {'weight':>7s} {'rec. MSE':>9s} {'Hoyer':>6s} "
    f"{'SVC acc':>7s} {'dilation':>8s} {'fit s':>6s}"
)
print(header)
print("-" * len(header))
for label, ref in ANCHORS.items():
    print(
        f"{label + ' (MNIST ref.)':>22s} {'-':>6s} {'-':>7s} "
        f"{ref['reconstruction']:9.5f} {ref['hoyer']:6.3f} {'-':>7s} "
        f"{ref['dilation']:8.4f} {'-':>6s}"
    )
for r in rows:
    print(
        f"{'autoencoder':>22s} {r['target']:6.2f} {r['weight']:7.0e} "
        f"{r['reconstruction']:9.5f} {r['hoyer']:6.3f} {r['accuracy']:7.3f} "
        f"{r['dilation']:8.4f} {r['fit_time']:6.1f}"
    )

# %%
# The four panels
# ---------------
# A light penalty keeps the reconstruction close to that of an unpenalised
# autoencoder while the codes become sparse; a heavy one pushes every unit
# towards the target activation, which flattens the codes again and costs both
# reconstruction and accuracy. On MNIST, ``sparsity_weight=1e-3`` with
# ``sparsity_target=0.1`` is below NCAE's reconstruction error and dilation
# error with sparser codes.

panels = [
    ("reconstruction", "test reconstruction MSE", True),
    ("hoyer", "Hoyer sparseness of the codes", False),
    ("accuracy", "SVC accuracy on the codes", False),
    ("dilation", "max-approximation-to-dilation error", True),
]
fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
for ax, (key, title, logy) in zip(axes.ravel(), panels):
    for target, marker in zip(targets, "os"):
        sel = [r for r in rows if r["target"] == target]
        ax.plot(
            [r["weight"] for r in sel],
            [r[key] for r in sel],
            marker=marker,
            label=f"autoencoder, sparsity_target={target}",
        )
    if mnist:
        for (label, ref), style in zip(ANCHORS.items(), ("--", ":")):
            if key in ref:
                ax.axhline(ref[key], color="k", ls=style, lw=1, label=label)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("sparsity_weight")
    ax.set_title(title, fontsize=10)
axes[0, 0].legend(fontsize=7)
fig.suptitle(f"Sparse non-negative autoencoder, k = {k} ({name})")
fig.tight_layout()
fig.savefig(OUTPUT / "autoencoder_study.png", dpi=80)
print(f"figure saved to {OUTPUT / 'autoencoder_study.png'}")
plt.show()
