"""
Fitting one model on a Dask cluster
===================================

When the data is a :class:`dask.array.Array` spread over the workers of a
:mod:`dask.distributed` cluster, :class:`~skpart.SparseNMF` and
:class:`~skpart.MultilayerNMF` fit it where it lives. Every iteration sends
the atoms to the workers, every block solves its own codes (which stay on its
worker, warm-started at the next iteration), and only the small statistics
``W^T X`` and ``W^T W`` of each block come back, summed, for the atoms'
update. The fit is the in-memory fit, iteration for iteration.

This example fits the same model in memory and on a cluster: the scheduler
at ``SKPART_DASK_SCHEDULER`` (for example ``tcp://10.0.0.5:8786``) if that
variable is set, else a ``LocalCluster`` of two single-threaded worker
processes started here. It then compares the atoms, and encodes the data
lazily with ``transform`` (a dask array of codes, computed block by block on
the workers). It runs on scikit-learn's 8x8 digits, or on 12 000 MNIST
training digits when ``SKPART_DATA`` points at a folder holding ``mnist/``.
``SKPART_QUICK=1`` makes it smaller. It needs the ``dask`` extra
(``pip install "skpart[dask]"``).

.. image:: /_static/dask_fit.png
   :alt: atoms of the in-memory fit and of the fit on the cluster
"""

# sphinx_gallery_thumbnail_path = '_static/dask_fit.png'

# %%
# The data, as a dask array in row blocks
# ---------------------------------------

import os
import time
import warnings
from pathlib import Path

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpart import SparseNMF
from skpart.datasets import load_mnist

QUICK = os.environ.get("SKPART_QUICK", "") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUTPUT = Path(os.environ.get("SKPART_OUTPUT", HERE / "output"))
OUTPUT.mkdir(parents=True, exist_ok=True)
warnings.simplefilter("ignore", ConvergenceWarning)


def load_data():
    """MNIST if SKPART_DATA holds mnist/, else sklearn's digits; values in [0, 1]."""
    home = os.environ.get("SKPART_DATA")
    if home and (Path(home) / "mnist").is_dir():
        X, _ = load_mnist(data_home=home, split="train", download=False)
        return "MNIST", X[: 3000 if QUICK else 12000], 28
    X = load_digits().data / 16.0
    return "digits", X[:600] if QUICK else X, 8


name, X, side = load_data()
k = 16 if name == "digits" else 36
max_iter = 30 if QUICK else 100
print(f"{name}: {X.shape[0]} x {X.shape[1]}, k = {k}, {max_iter} iterations")

# %%
# In memory and on the cluster
# ----------------------------
# Dask's worker processes are started with the ``spawn`` method, which
# re-imports this script: the work runs under the ``__main__`` guard. In a
# real deployment the array would be built on the workers (for example with
# ``dask.array.from_zarr`` or ``from_delayed``) and never pass through the
# client; here it is cut from the array in memory.


def main():
    params = dict(n_components=k, max_iter=max_iter, random_state=0)
    t0 = time.perf_counter()
    memory = SparseNMF(**params).fit(X)
    t_memory = time.perf_counter() - t0

    address = os.environ.get("SKPART_DASK_SCHEDULER")
    if address:
        client, cluster = Client(address), None
    else:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    X_dask = da.from_array(X, chunks=(-(-X.shape[0] // 6), X.shape[1])).persist()
    t0 = time.perf_counter()
    spread = SparseNMF(**params).fit(X_dask)
    t_cluster = time.perf_counter() - t0
    codes = spread.transform(X_dask)  # lazy: nothing computed yet
    print(f"codes: {type(codes).__name__} of {codes.numblocks[0]} blocks")
    codes = codes.compute()
    client.close()
    if cluster is not None:
        cluster.close()

    gap = np.abs(spread.components_ - memory.components_).max()
    print(f"in memory: {t_memory:.2f} s, on the cluster: {t_cluster:.2f} s")
    print(f"iterations: {memory.n_iter_} and {spread.n_iter_}")
    print(
        f"reconstruction_err_: {memory.reconstruction_err_:.6f} and "
        f"{spread.reconstruction_err_:.6f}"
    )
    print(f"largest difference of the atoms: {gap:.2e}")
    same = np.allclose(codes, memory.transform(X))
    print(f"codes of the cluster = transform in memory: {same}")

    # The atoms of both fits, side by side.
    n_show = min(k, 8)
    fig, axes = plt.subplots(2, n_show, figsize=(1.2 * n_show, 2.8))
    for row, (label, model) in enumerate((("memory", memory), ("cluster", spread))):
        for col in range(n_show):
            ax = axes[row, col]
            ax.imshow(model.components_[col].reshape(side, side), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label)
    fig.suptitle(f"SparseNMF atoms, {name}: in memory and on a Dask cluster")
    fig.tight_layout()
    fig.savefig(OUTPUT / "dask_fit.png", dpi=100)
    print(f"figure saved to {OUTPUT / 'dask_fit.png'}")


if __name__ == "__main__":
    main()
