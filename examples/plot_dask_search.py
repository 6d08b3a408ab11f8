"""
Grid search on a Dask cluster, and threads that do not oversubscribe
=====================================================================

A search over skpart pipelines is many independent fits: scikit-learn hands
them to joblib, and joblib's ``"dask"`` backend sends them to the workers of a
:mod:`dask.distributed` cluster. This example runs the same
:class:`~sklearn.model_selection.GridSearchCV` three ways and times them:

- in this process, one fit after the other (``n_jobs=1``; torch uses every
  core for each fit);
- with ``n_jobs=2`` on joblib's default process backend: joblib limits the
  threads of each worker (torch follows the OpenMP limit), so two workers on
  two cores do not fight over them;
- on a Dask cluster: the scheduler at ``SKPART_DASK_SCHEDULER`` (for example
  ``tcp://10.0.0.5:8786``) if that variable is set, else a ``LocalCluster`` of
  two single-threaded worker processes started here. Dask's workers get one
  OpenMP thread per worker thread, so torch does not oversubscribe them either.

All three give the same scores up to the rounding of a different number of
threads per fit. GPU caveat: with ``device="cuda"`` give each
worker its own GPU (one worker per GPU, e.g. ``CUDA_VISIBLE_DEVICES`` set per
worker with ``dask-cuda``'s ``LocalCUDACluster``); several workers sharing one
GPU serialise on it and may run out of its memory.

It runs on scikit-learn's bundled 8x8 digits, or on 3 000 MNIST training
digits when ``SKPART_DATA`` points at a folder holding ``mnist/``.
``SKPART_QUICK=1`` shrinks the grid for a smoke run. It needs the ``dask``
extra (``pip install "skpart[dask]"``).

On 3 000 MNIST digits (4 candidates x 3 folds, this project's 2-core machine)
the search took 29.6 s with ``n_jobs=1``, 18.5 s with ``n_jobs=2`` and 22.0 s
on a local two-worker Dask cluster (its start included):

.. image:: /_static/dask_search.png
   :alt: wall time of the same grid search run three ways
"""

# sphinx_gallery_thumbnail_path = '_static/dask_search.png'

# %%
# Data and the search
# -------------------

import os
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster
from joblib import parallel_backend
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from skpart import SparseNMF
from skpart.datasets import load_mnist
from skpart.metrics import hoyer_scorer, reconstruction_scorer

QUICK = os.environ.get("SKPART_QUICK", "") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUTPUT = Path(os.environ.get("SKPART_OUTPUT", HERE / "output"))
OUTPUT.mkdir(parents=True, exist_ok=True)
warnings.simplefilter("ignore", ConvergenceWarning)


def load_data():
    """MNIST if SKPART_DATA holds mnist/, else sklearn's digits; values in [0, 1]."""
    home = os.environ.get("SKPART_DATA")
    if home and (Path(home) / "mnist").is_dir():
        X, y = load_mnist(data_home=home, split="train", download=False)
        n = 1000 if QUICK else 3000
        return "MNIST", X[:n], y[:n]
    X, y = load_digits(return_X_y=True)
    n = 600 if QUICK else len(X)
    return "digits", (X[:n] / 16.0).astype(np.float32), y[:n]


name, X, y = load_data()
k = 16 if name == "digits" else 49
print(f"{name}: {len(X)} digits, k = {k}")


def make_search(n_jobs):
    pipe = Pipeline(
        [("nmf", SparseNMF(k, max_iter=100, random_state=0)), ("svc", SVC())]
    )
    grid = {"nmf__sparseness_codes": [None, 0.5] if QUICK else [None, 0.3, 0.5, 0.7]}
    return GridSearchCV(
        pipe,
        grid,
        scoring={
            "accuracy": "accuracy",
            "hoyer": hoyer_scorer,
            "reconstruction": reconstruction_scorer,
        },
        refit="accuracy",
        cv=3,
        n_jobs=n_jobs,
    )


def timed(search, backend=None):
    t0 = time.perf_counter()
    if backend is None:
        search.fit(X, y)
    else:
        with parallel_backend(backend):
            search.fit(X, y)
    return time.perf_counter() - t0


# %%
# Three ways to run it
# --------------------
# Dask's worker processes are started with the ``spawn`` method, which
# re-imports this script: the work runs under the ``__main__`` guard.


def main():
    runs = {}
    one = make_search(n_jobs=1)
    runs["n_jobs=1"] = timed(one)
    two = make_search(n_jobs=2)
    runs["n_jobs=2 (loky)"] = timed(two)

    address = os.environ.get("SKPART_DASK_SCHEDULER")
    if address:
        client, cluster = Client(address), None
    else:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    threads = client.run(lambda: __import__("torch").get_num_threads())
    per_worker = set(threads.values())
    print(f"Dask workers: {len(threads)}, torch threads per worker: {per_worker}")
    on_dask = make_search(n_jobs=-1)
    runs["Dask cluster"] = timed(on_dask, backend="dask")
    client.close()
    if cluster is not None:
        cluster.close()

    for label, seconds in runs.items():
        print(f"{label:18s} {seconds:7.2f} s")
    # The fits are the same up to the rounding of a different number of
    # threads per fit (which can move an accuracy by one test digit).
    for label, search in (("n_jobs=2", two), ("Dask", on_dask)):
        gap = max(
            np.max(np.abs(search.cv_results_[key] - one.cv_results_[key]))
            for key in ("mean_test_accuracy", "mean_test_hoyer")
        )
        print(f"{label}: largest score difference from n_jobs=1: {gap:.4f}")
    print("best candidate:", one.best_params_)

    # The timings, as a figure.
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(list(runs), list(runs.values()), color=["0.6", "tab:blue", "tab:orange"])
    ax.set_xlabel("wall time of the search (s)")
    n_candidates = len(one.cv_results_["params"])
    ax.set_title(f"GridSearchCV, {n_candidates} candidates x 3 folds")
    fig.tight_layout()
    fig.savefig(OUTPUT / "dask_search.png", dpi=100)
    print(f"figure saved to {OUTPUT / 'dask_search.png'}")


if __name__ == "__main__":
    main()
