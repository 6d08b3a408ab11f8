"""Time one SparseNMF fit from a given checkout: the A/B check that a change
leaves the CPU no slower (run old and new alternately, take the minimum).

    git worktree add --detach ../old <rev>
    for i in 1 2 3; do for tree in ../old .; do
        OMP_NUM_THREADS=1 python benchmarks/ab_fit_time.py $tree mnist 1
    done; done

Cases: ``mnist`` (SparseNMF(100) cd, 10 000 training digits, 30 iterations),
``mnist-mu`` (SparseNMF(50) mu, 50 iterations), ``sparse`` (random CSR
200 000 x 20 000 at density 0.001, k = 50, cd, 10 iterations). Prints the
fit's time and error as JSON (the errors of both checkouts should agree).
"""

import json
import os
import sys
import time
import warnings
from pathlib import Path

tree, case, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, str(Path(tree).resolve()))
warnings.simplefilter("ignore")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

import skpart  # noqa: E402
from skpart import SparseNMF  # noqa: E402
from skpart.datasets import load_mnist  # noqa: E402

assert skpart.__file__.startswith(str(Path(tree).resolve())), skpart.__file__
torch.set_num_threads(threads)
HERE = Path(__file__).resolve().parent
DATA = os.environ.get("SKPART_DATA", str(HERE.parents[1] / "shared" / "data"))
if case.startswith("mnist"):
    X = load_mnist(data_home=DATA, split="train", download=False)[0][:10_000]
    kw = dict(n_components=100, init="nndsvda", tol=0, max_iter=30)
    if case == "mnist-mu":
        kw.update(n_components=50, max_iter=50, solver="mu")
else:
    X = sp.random(200_000, 20_000, density=0.001, format="csr", rng=0)
    X = X.astype(np.float64)
    kw = dict(n_components=50, init="nndsvda", tol=0, max_iter=10)
t0 = time.perf_counter()
model = SparseNMF(random_state=0, **kw).fit(X)
elapsed = time.perf_counter() - t0
print(json.dumps({"time": elapsed, "error": float(model.reconstruction_err_)}))
