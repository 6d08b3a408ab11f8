"""Sparse input: SparseNMF vs sklearn NMF on a CSR matrix, time, peak RSS and error.

Each fit runs in a fresh subprocess (``OMP_NUM_THREADS`` as set by the
caller), which reports its wall time (validation and init included), its
peak resident set size (``ru_maxrss``), the RSS after its imports and after
loading the data, ``reconstruction_err_`` and ``n_iter_``. The data are
built once and cached as ``.npz`` in the system temp folder:

- ``tfidf``: a synthetic TF-IDF matrix, 15 000 documents x 5 000 terms at
  about 1.35 % density (documents drawn from 20 Zipf-distributed topics
  with Dirichlet(0.1) mixtures, then ``TfidfTransformer``);
- ``random``: ``scipy.sparse.random(n, m, density, random_state=0)``.

    python benchmarks/bench_sparse_input.py --data tfidf --solver mu --beta 1 \
        --max-iter 50 --tol 0 --k 20
    python benchmarks/bench_sparse_input.py --data random --n 50000 --m 20000 \
        --density 0.001 --k 50 --solver cd --max-iter 50 --tol 0
    python benchmarks/bench_sparse_input.py --baseline   # RSS of imports alone
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time, warnings
import numpy as np, scipy.sparse as sp
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
which, path, kw = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if which == "sklearn":
    from sklearn.decomposition import NMF as Model
else:
    from skpart import SparseNMF as Model
after_import = rss()
X = sp.load_npz(path).tocsr()
after_load = rss()
warnings.simplefilter("ignore")
t0 = time.perf_counter()
model = Model(random_state=0, **kw).fit(X)
seconds = time.perf_counter() - t0
print(json.dumps({"s": seconds, "peak_mib": rss(), "import_mib": after_import,
    "load_mib": after_load, "err": float(model.reconstruction_err_),
    "n_iter": int(model.n_iter_)}))
"""

BASELINE = """
import resource, torch, skpart
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def tfidf(n=15000, m=5000, topics=20, doc_len=85, seed=0):
    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfTransformer

    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, m + 1) ** 1.1
    word = np.stack([rng.permutation(zipf) for _ in range(topics)])
    word /= word.sum(1, keepdims=True)
    mix = rng.dirichlet(np.full(topics, 0.1), size=n)
    lengths = rng.poisson(doc_len, size=n)
    rows = []
    for i in range(n):
        counts = rng.multinomial(lengths[i], mix[i] @ word)
        rows.append(sp.csr_matrix(counts))
    return TfidfTransformer().fit_transform(sp.vstack(rows).tocsr())


def dataset(args):
    import scipy.sparse as sp

    if args.data == "tfidf":
        name = "skpart_tfidf_15000x5000.npz"
    else:
        name = f"skpart_random_{args.n}x{args.m}_{args.density}.npz"
    path = Path(tempfile.gettempdir()) / name
    if not path.exists():
        if args.data == "tfidf":
            X = tfidf()
        else:
            X = sp.random(args.n, args.m, density=args.density, random_state=0)
        sp.save_npz(path, X.tocsr())
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["tfidf", "random"], default="tfidf")
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--m", type=int, default=20000)
    parser.add_argument("--density", type=float, default=0.001)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--solver", default="mu")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--init", default="nndsvda")
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--libs", nargs="+", default=["sklearn", "skpart"])
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    if args.baseline:
        out = subprocess.run([sys.executable, "-c", BASELINE], capture_output=True)
        print("RSS of import torch, skpart (MiB):", out.stdout.decode().strip())
        return
    path = dataset(args)
    kw = dict(
        n_components=args.k,
        solver=args.solver,
        beta_loss=args.beta,
        init=args.init,
        max_iter=args.max_iter,
        tol=args.tol,
    )
    print(json.dumps(vars(args)))
    for lib in args.libs:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, lib, str(path), json.dumps(kw)],
            capture_output=True,
            text=True,
        )
        if out.returncode:
            print(lib, "failed:", out.stderr[-2000:])
            continue
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{lib:8s}", " ".join(f"{k}={v:.4g}" for k, v in res.items()))


if __name__ == "__main__":
    main()
