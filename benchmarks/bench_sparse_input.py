"""Sparse input: SparseNMF vs scikit-learn NMF on TF-IDF text and a random CSR.

The workloads of issue 14, side by side with ``sklearn.decomposition.NMF`` in
one run, one table per thread count::

    python benchmarks/bench_sparse_input.py             # full run, writes results
    python benchmarks/bench_sparse_input.py --quick     # smoke run, small data
    python benchmarks/bench_sparse_input.py --threads 1 \\
        --workloads tfidf-fro-cd random-cd-50          # a subset
    python benchmarks/bench_sparse_input.py --out /tmp/x.md   # elsewhere

The fits import ``skpart`` from the checkout this script lives in: they run
in subprocesses started in that checkout's root with the root first on
``PYTHONPATH``, so a worktree benchmarks its own code, not the installed
package (the results name the ``skpart`` imported and its commit).

Data (built once per run in a temporary directory, deleted at the end; nothing
is cached in the repository):

- TF-IDF: the docstrings (module, class, function; ``ast.get_docstring``) of
  the running Python's standard library (``sysconfig.get_paths()["stdlib"]``,
  ``.py`` files in sorted path order, ``site-packages`` and ``__pycache__``
  skipped, test packages kept, files that fail to parse skipped), the first
  ``--docs`` of them, vectorised by ``TfidfVectorizer(max_features=5000,
  analyzer="char_wb", ngram_range=(4, 4))``; ``tfidf-small-kl-mu`` uses the
  first ``--small-docs`` rows of that matrix. CPython 3.11's standard library
  holds 11 459 docstrings, fewer than the issue's 15 000 (site-packages would
  make the matrix depend on what is installed); character 4-grams give a
  density near the issue's 1.35% (1.45%; word unigrams, ``--analyzer word``,
  give 0.36%: most docstrings are a line or two). The shape and density are
  written in the results.
- Random: ``scipy.sparse.random(200_000, 20_000, density=0.001,
  format="csr", rng=0, dtype=np.float64)``, float64 as in the issue. (With
  ``random_state=0`` SciPy draws the positions through NumPy's legacy
  ``RandomState``, which permutes all 4e9 cell indices: 30 GiB.)

Each fit runs in a fresh subprocess with ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` set, ``threadpoolctl``
limiting both libraries' BLAS and ``torch.set_num_threads`` for SparseNMF. The
subprocess loads the matrix, notes its peak RSS ("data"), then imports the
library and times ``fit`` alone (validation and init included, data building
excluded), and reports ``reconstruction_err_``, ``n_iter_`` and its peak RSS.
Peak RSS is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` survives
``fork`` and ``exec`` on Linux, so a child's would start at this script's own
peak (the data building's). A third kind of subprocess only loads the data and
imports scikit-learn, then skpart (and so torch): the difference is the memory
cost of importing torch, and "budget" = sklearn's peak + that cost. torch
maps the code of its libraries in at the first call of each kernel (about
20 MiB of file-backed pages for a sparse fit), after the import: each
workload also runs in both libraries on its first 256 rows (10 iterations),
and "budget with first use" = sklearn's peak + (SparseNMF's peak - sklearn's
peak) on those rows, torch's whole fixed cost in that setting.

"Time to sklearn's error": sklearn runs at the stated setting (default
``tol``, or ``tol=0`` with a fixed ``max_iter``), giving time ``T`` and error
``e``. SparseNMF is fitted with ``tol=0`` and ``max_iter`` in 5, 10, 15, 20,
30, 40, 60, 80, 120, ... until its error is at most ``e * (1 + 1e-6)``; the
schedule is coarse, so every count between the first that reaches and the
schedule's point before is then tried too; the table gives the smallest
``max_iter`` that reaches, the time of that fit and ``T`` divided by it. The
fits of a search run one after the other in one subprocess; the one that
reaches ``e`` is then
rerun alone in a fresh one, whose time is the one reported. A fixed-``max_iter``
row uses its own SparseNMF fit as one point of the search. The search stops,
"not reached", after a fit that took more than ``--search-cap`` times ``T``
(1 by default: slower than sklearn is conclusive for the issue's 2x target,
and it keeps the full run short), after one that improved the error by less
than a relative 1e-7 ("stalled": another local minimum), or when ``max_iter``
passes ``--search-max-iter``.

"Error alone": the time of one evaluation of the error of a fit
(``reconstruction_err_``): sklearn's ``_beta_divergence(X, W, H, beta,
square_root=True)`` on the SciPy matrix against skpart's
``skpart._core._beta.beta_divergence`` on tensors (conversion not timed),
with random non-negative ``W`` and ``H`` of the fit's shapes.

Topics: for the TF-IDF rows, the number of sklearn's 20 components whose best
match among SparseNMF's (cosine of the rows of ``components_``) exceeds 0.9.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SCHEDULE = (5, 10, 15, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960)
REACH_RTOL = 1e-6
STALL_RTOL = 1e-7
MATCH_COSINE = 0.9
TINY_ROWS = 256
LIBS = ("sklearn", "skpart")

# Each workload: its data set ("tfidf" or "random"), its rows ("all", or
# "small": the first --small-docs), the estimator's parameters (besides
# init="nndsvda", random_state=0), whether to search for the time to reach
# sklearn's error, the thread counts it runs at (None: all of --threads) and a
# label. The "error-*" workloads time one error evaluation instead of a fit.
WORKLOADS = {
    "tfidf-fro-cd": dict(
        data="tfidf",
        params=dict(n_components=20, solver="cd"),
        label="Frobenius, cd, default tol",
    ),
    "tfidf-kl-mu-50": dict(
        data="tfidf",
        params=dict(
            n_components=20,
            solver="mu",
            beta_loss="kullback-leibler",
            max_iter=50,
            tol=0,
        ),
        label="Kullback-Leibler, mu, 50 iterations",
    ),
    "tfidf-small-kl-mu": dict(
        data="tfidf",
        rows="small",
        params=dict(n_components=20, solver="mu", beta_loss="kullback-leibler"),
        label="KL, mu, default tol",
    ),
    "tfidf-kl-mu": dict(
        data="tfidf",
        params=dict(n_components=20, solver="mu", beta_loss="kullback-leibler"),
        search=False,
        threads=(2,),
        label="KL, mu, default tol",
    ),
    "random-cd-50": dict(
        data="random",
        params=dict(n_components=50, solver="cd", max_iter=50, tol=0),
        label="Frobenius, cd, k = 50, 50 iterations",
    ),
    "error-random-fro": dict(
        data="random",
        params=dict(n_components=50, beta_loss="frobenius"),
        search=False,
        label="error alone, Frobenius, k = 50",
    ),
    "error-tfidf-kl": dict(
        data="tfidf",
        params=dict(n_components=20, beta_loss="kullback-leibler"),
        search=False,
        label="error alone, KL, k = 20",
    ),
}
for _w in WORKLOADS.values():
    _w.setdefault("rows", "all")
    _w.setdefault("search", True)
    _w.setdefault("threads", None)

CHILD = r"""
import json, sys, time, warnings
spec = json.loads(sys.argv[1])
def peak_mib():  # VmHWM; ru_maxrss would start from the parent's peak
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits
X = sp.load_npz(spec["data"])
if spec["rows"] is not None:
    X = X[: spec["rows"]].copy()
out = {"data_mib": peak_mib()}
threads = spec["threads"]
warnings.simplefilter("ignore")
if spec.get("lib") == "skpart":
    import torch
    from skpart import SparseNMF as Model
    torch.set_num_threads(threads)
else:
    from sklearn.decomposition import NMF as Model
def fit(params):
    model = Model(init="nndsvda", random_state=0, **params)
    with threadpool_limits(threads):
        t0 = time.perf_counter()
        model.fit(X)
        t = time.perf_counter() - t0
    return model, dict(time=t, error=float(model.reconstruction_err_),
                       n_iter=int(model.n_iter_))
if spec["task"] == "imports":
    out["sklearn_mib"] = peak_mib()
    import skpart
    out["skpart_mib"] = peak_mib()
    out["skpart_file"] = skpart.__file__
elif spec["task"] == "fit":
    model, res = fit(spec["params"])
    out.update(res)
    if spec["components"]:
        np.save(spec["components"], model.components_)
elif spec["task"] == "search":  # one line per fit, the parent reads them
    prev = None
    for n in spec["schedule"]:
        res = fit(dict(spec["params"], tol=0, max_iter=n))[1]
        res["max_iter"] = n
        print(json.dumps(res), flush=True)
        if res["error"] <= spec["target"] or res["time"] > spec["time_cap"]:
            break
        if prev is not None and res["error"] > prev * (1 - spec["stall_rtol"]):
            break
        prev = res["error"]
    sys.exit()
else:  # one evaluation of the error of a fit, with random factors
    p = spec["params"]
    beta = {"frobenius": 2, "kullback-leibler": 1}[p["beta_loss"]]
    rng = np.random.default_rng(0)
    avg = np.sqrt(X.mean() / p["n_components"])
    W = avg * rng.random((X.shape[0], p["n_components"]))
    H = avg * rng.random((p["n_components"], X.shape[1]))
    with threadpool_limits(threads):
        if spec["lib"] == "sklearn":
            from sklearn.decomposition._nmf import _beta_divergence
            t0 = time.perf_counter()
            err = _beta_divergence(X, W, H, beta, square_root=True)
            out["time"] = time.perf_counter() - t0
        else:
            from skpart._core._beta import beta_divergence
            from skpart._estimators._base import to_tensor
            Xt, Wt, Ht = (to_tensor(A, device="cpu") for A in (X, W, H))
            t0 = time.perf_counter()
            err = beta_divergence(Xt, Wt, Ht, beta, square_root=True)
            out["time"] = time.perf_counter() - t0
    out["error"] = float(err)
    out["n_iter"] = None
out["peak_mib"] = peak_mib()
print(json.dumps(out))
"""


# -- data ------------------------------------------------------------------
def stdlib_docstrings(n_docs):
    """The first ``n_docs`` docstrings of the standard library (module, class,
    function), files in sorted path order; also the number of files read."""
    import ast
    import sysconfig
    import warnings

    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("site-packages", "__pycache__")]
        files += [Path(dirpath, f) for f in filenames if f.endswith(".py")]
    docs, n_files = [], 0
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for path in sorted(files):
        if len(docs) >= n_docs:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes in old files
                tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        n_files += 1
        for node in ast.walk(tree):
            if isinstance(node, nodes) and (doc := ast.get_docstring(node)):
                docs.append(doc)
    return docs[:n_docs], n_files, root


def tfidf_matrix(n_docs, analyzer):
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs, n_files, root = stdlib_docstrings(n_docs)
    opts = dict(max_features=5000)
    if analyzer == "char_wb":
        opts.update(analyzer="char_wb", ngram_range=(4, 4))
    X = TfidfVectorizer(**opts).fit_transform(docs)
    desc = (
        f"the first {len(docs)} docstrings of {n_files} files of {root} "
        f"(asked for {n_docs}), TfidfVectorizer("
        + ", ".join(f"{k}={v!r}" for k, v in opts.items())
        + ")"
    )
    return X, desc


def random_matrix(shape):
    X = sp.random(*shape, density=0.001, format="csr", rng=0, dtype=np.float64)
    desc = (
        f"scipy.sparse.random({shape[0]}, {shape[1]}, density=0.001, "
        'format="csr", rng=0, dtype=np.float64)'
    )
    return X, desc


def describe(X, rows=None):
    X = X[:rows] if rows else X
    return (
        f"{X.shape[0]} x {X.shape[1]}, {X.nnz} non-zeros "
        f"(density {100 * X.nnz / (X.shape[0] * X.shape[1]):.3f}%)"
    )


# -- subprocesses ------------------------------------------------------------
def child(spec, threads, timeout, lines=False):
    """Run CHILD on ``spec`` with ``threads`` threads; its JSON result (None
    if it ran past ``timeout`` seconds), or with ``lines`` the list of all the
    JSON lines it printed before it ended or was stopped."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    spec = dict(spec, threads=threads)
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(spec)],
            capture_output=True,
            env=env,
            cwd=ROOT,
            timeout=timeout,
        )
        stdout = out.stdout
    except subprocess.TimeoutExpired as exc:
        if not lines:
            return None
        stdout = exc.stdout or b""
    else:
        if out.returncode:
            raise RuntimeError(f"child failed on {spec}:\n{out.stderr.decode()}")
    results = [json.loads(line) for line in stdout.decode().splitlines() if line]
    return results if lines else results[-1]


def search(spec, threads, target, t_sk, known, args):
    """Smallest ``max_iter`` with which SparseNMF(tol=0) reaches ``target``:
    the first of SCHEDULE, then the first of the counts between it and the
    schedule's point before.

    The fits of the search run one after the other in one subprocess, which
    stops at the first that reaches ``target``, takes more than
    ``--search-cap`` times ``t_sk`` or improves the error by less than a
    relative STALL_RTOL on the fit before; the fit that reaches is then run
    again alone in a fresh subprocess, whose time is reported. ``known`` is
    ``(max_iter, result)`` of a tol=0 fit already made in a fresh subprocess,
    or None: the search then runs below it if it reached ``target``, above it
    if not.

    Returns ``(max_iter, result, status)``, status one of "reached", "time
    cap", "stalled", "max_iter cap" (``result``: the last fit) or "timeout"
    (``result`` None, ``max_iter`` the fit that ran past ``--timeout``).
    """
    cap = args.search_cap * t_sk
    schedule = [n for n in SCHEDULE if n <= args.search_max_iter]
    if known is not None:
        below = known[1]["error"] <= target
        schedule = [n for n in schedule if (n < known[0] if below else n > known[0])]
        if not below and known[1]["time"] > cap:
            return (*known, "time cap")
    fits = []
    if schedule:
        spec_search = dict(
            spec,
            task="search",
            schedule=schedule,
            target=target,
            time_cap=cap,
            stall_rtol=STALL_RTOL,
        )
        fits = child(spec_search, threads, args.timeout * 4, lines=True)
        for res in fits:
            print(f"    search: {res}", flush=True)
    if fits and fits[-1]["error"] <= target:
        n = fits[-1]["max_iter"]
        below = fits[-2]["max_iter"] if len(fits) > 1 else 0
        if n - below > 1:  # every count in between, none stopped as stalled
            finer = dict(spec_search, schedule=list(range(below + 1, n)))
            finer["stall_rtol"] = -1.0
            more = child(finer, threads, args.timeout * 4, lines=True) or []
            for res in more:
                print(f"    finer: {res}", flush=True)
            n = next((r["max_iter"] for r in more if r["error"] <= target), n)
        params = dict(spec["params"], tol=0, max_iter=n)
        res = child(dict(spec, task="fit", params=params), threads, args.timeout)
        print(f"    again alone: {res}", flush=True)
        return n, res, "reached" if res is not None else "timeout"
    if known is not None and known[1]["error"] <= target:
        return (*known, "reached")
    if len(fits) < len(schedule):  # the search stopped early: why?
        last = fits[-1] if fits else None
        if last and last["time"] > cap:
            return last["max_iter"], last, "time cap"
        if len(fits) > 1 and last["error"] > fits[-2]["error"] * (1 - STALL_RTOL):
            return last["max_iter"], last, "stalled"
        return schedule[len(fits)], None, "timeout"
    if fits:
        return fits[-1]["max_iter"], fits[-1], "max_iter cap"
    return (*known, "max_iter cap") if known else (None, None, "max_iter cap")


def topics_matched(A, B):
    """How many rows of ``A`` have a row of ``B`` with cosine > MATCH_COSINE."""
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
    B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-300)
    return int(((A @ B.T).max(axis=1) > MATCH_COSINE).sum())


def run_workload(name, threads, paths, tmp, args):
    w = WORKLOADS[name]
    params = w["params"]
    task = "error" if name.startswith("error-") else "fit"
    rows = args.small_docs if w["rows"] == "small" else None
    spec = dict(task=task, data=paths[w["data"]], rows=rows, params=params)
    comps = {}
    if w["data"] == "tfidf" and task == "fit":
        comps = {lib: str(tmp / f"{name}-{threads}-{lib}.npy") for lib in LIBS}
    row = dict(name=name, threads=threads)
    for lib in LIBS:
        spec_lib = dict(spec, lib=lib, components=comps.get(lib))
        row[lib] = child(spec_lib, threads, args.timeout)
        print(f"  {lib}: {row[lib]}", flush=True)
    if comps and row["sklearn"] and row["skpart"]:
        A, B = (np.load(comps[lib]) for lib in LIBS)
        row["topics"] = topics_matched(A, B)
    # torch's fixed cost in this setting: the same fit on the first TINY_ROWS
    # rows, whose peak is the imports plus the pages of the libraries' code
    # and the allocators' arenas that the first use of each kernel brings in.
    tiny = dict(spec, rows=TINY_ROWS, params=dict(params, max_iter=10, tol=0))
    row["tiny"] = {
        lib: child(dict(tiny, lib=lib, components=None), threads, args.timeout)
        for lib in LIBS
    }
    fixed = params.get("tol") == 0 and "max_iter" in params
    if w["search"] and row["sklearn"] is not None:
        if fixed and row["skpart"] is None:  # the fixed setting ran past timeout
            row["reach"] = params["max_iter"], None, "timeout"
        else:
            sk = row["sklearn"]
            target = sk["error"] * (1 + REACH_RTOL)
            known = (params["max_iter"], row["skpart"]) if fixed else None
            spec_fit = dict(spec, lib="skpart", components=None)
            row["reach"] = search(spec_fit, threads, target, sk["time"], known, args)
    row["load"] = os.getloadavg()[0]
    return row


# -- report ------------------------------------------------------------------
def fmt_fit(res, timeout):
    if res is None:
        return f"not finished after {timeout:.0f} s", "-", "-"
    it = f" ({res['n_iter']} it)" if res["n_iter"] is not None else ""
    return f"{res['time']:.2f} s{it}", f"{res['error']:.6g}", f"{res['peak_mib']:.0f}"


def fmt_reach(row, timeout):
    if "reach" not in row:
        return "-"
    n, res, status = row["reach"]
    sk = row["sklearn"]
    if status == "reached":
        return f"{n} it, {res['time']:.2f} s, {sk['time'] / res['time']:.2f}x"
    if status == "timeout":
        return f"not reached: max_iter={n} ran past {timeout:.0f} s"
    gap = 100 * (res["error"] / sk["error"] - 1)
    return (
        f"not reached ({status}): {res['error']:.6g} (+{gap:.2g}%) after "
        f"{n} it, {res['time']:.2f} s, < {sk['time'] / res['time']:.2f}x"
    )


def first_use_budget(row):
    """sklearn's peak + torch's fixed cost measured by the tiny fits."""
    sk, tiny = row["sklearn"], row.get("tiny", {})
    if not sk or not all(tiny.get(lib) for lib in LIBS):
        return "-"
    fixed = tiny["skpart"]["peak_mib"] - tiny["sklearn"]["peak_mib"]
    return f"{sk['peak_mib'] + fixed:.0f}"


def table(rows, labels, torch_mib, timeout):
    lines = [
        "| workload | sklearn time | sklearn error | sklearn peak MiB | "
        "SparseNMF time | SparseNMF error | SparseNMF peak MiB | budget MiB | "
        "budget with first use MiB | "
        "time ratio | SparseNMF to sklearn's error: max_iter, time, ratio | "
        "topics matched | load |",
        "|" + "---|" * 13,
    ]
    for row in rows:
        sk, spn = row["sklearn"], row["skpart"]
        ratio = f"{sk['time'] / spn['time']:.2f}x" if sk and spn else "-"
        extra = torch_mib[WORKLOADS[row["name"]]["data"]]
        cells = [
            f"{labels[row['name']]} (`{row['name']}`)",
            *fmt_fit(sk, timeout),
            *fmt_fit(spn, timeout),
            f"{sk['peak_mib'] + extra:.0f}" if sk else "-",
            first_use_budget(row),
            ratio,
            fmt_reach(row, timeout),
            f"{row['topics']}/20" if "topics" in row else "-",
            f"{row['load']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def git_head():
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: --docs 1000 --small-docs 300 --random-shape 20000 "
        "5000 --timeout 60, results not written unless --out is given",
    )
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), help="(all)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="(1 2)")
    parser.add_argument("--docs", type=int, help="TF-IDF documents (15000)")
    parser.add_argument(
        "--small-docs", type=int, help="rows of tfidf-small-kl-mu (2000)"
    )
    parser.add_argument(
        "--random-shape", type=int, nargs=2, help="random CSR (200000 20000)"
    )
    parser.add_argument(
        "--analyzer",
        choices=["char_wb", "word"],
        default="char_wb",
        help="TF-IDF features: character 4-grams or words (char_wb)",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per fit before 'not finished' (300)"
    )
    parser.add_argument(
        "--search-cap",
        type=float,
        default=1.0,
        help="stop the search once a fit took this many times sklearn's time (1)",
    )
    parser.add_argument("--search-max-iter", type=int, default=1000, help="(1000)")
    parser.add_argument(
        "--out",
        help="markdown file to write (benchmarks/results/bench_sparse_input.md "
        "for a full run, none with --quick)",
    )
    args = parser.parse_args()
    quick = args.quick
    args.docs = args.docs or (1000 if quick else 15000)
    args.small_docs = args.small_docs or (300 if quick else 2000)
    default_shape = (20000, 5000) if quick else (200000, 20000)
    args.random_shape = tuple(args.random_shape or default_shape)
    args.timeout = args.timeout or (60.0 if quick else 300.0)
    names = args.workloads or list(WORKLOADS)
    default_out = None if quick else HERE / "results" / "bench_sparse_input.md"
    out_path = args.out or default_out

    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_sparse_input_") as tmp:
        tmp = Path(tmp)
        paths, descs, shapes = {}, {}, {}
        needed = sorted({WORKLOADS[n]["data"] for n in names})
        for data in needed:
            t0 = time.perf_counter()
            if data == "tfidf":
                X, desc = tfidf_matrix(args.docs, args.analyzer)
            else:
                X, desc = random_matrix(args.random_shape)
            built = time.perf_counter() - t0
            paths[data] = str(tmp / f"{data}.npz")
            sp.save_npz(paths[data], X, compressed=False)
            shapes[data] = X.shape[0]
            descs[data] = f"{desc}: {describe(X)}"
            if data == "tfidf":
                descs[data] += f"; its first {args.small_docs} rows: "
                descs[data] += describe(X, args.small_docs)
            descs[data] += f". Built in {built:.1f} s."
            print(f"{data}: {descs[data]}", flush=True)
            del X

        imports = {}
        for data in needed:
            spec = dict(task="imports", data=paths[data], rows=None)
            imports[data] = child(spec, 1, args.timeout)
            print(f"imports with {data}: {imports[data]}", flush=True)

        tables = {}
        for threads in args.threads:
            tables[threads] = []
            for name in names:
                only = WORKLOADS[name]["threads"]
                if only is not None and threads not in only:
                    continue
                print(f"{name}, {threads} thread(s):", flush=True)
                tables[threads].append(run_workload(name, threads, paths, tmp, args))
    elapsed = time.perf_counter() - t_start

    labels = {}
    for name, w in WORKLOADS.items():
        if w["data"] == "tfidf":
            n = args.small_docs if w["rows"] == "small" else shapes.get("tfidf")
            labels[name] = f"TF-IDF {n} docs, {w['label']}"
        else:
            labels[name] = f"random CSR, {w['label']}"
    torch_mib = {d: r["skpart_mib"] - r["sklearn_mib"] for d, r in imports.items()}
    skpart_dir = Path(imports[needed[0]]["skpart_file"]).parent
    cmd = shlex.join(["python", "benchmarks/bench_sparse_input.py", *sys.argv[1:]])
    text = [
        "# Sparse input: SparseNMF vs scikit-learn NMF (issue 14)",
        "",
        f"`{cmd}` on {datetime.date.today()}, {elapsed / 60:.1f} min; "
        f"`nproc` = {len(os.sched_getaffinity(0))}, 1-minute load average "
        f"{load_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
        "(a shared machine: times are indicative). Python "
        f"{platform.python_version()}, torch {version('torch')}, scikit-learn "
        f"{version('scikit-learn')}, NumPy {np.__version__}, SciPy "
        f"{version('scipy')}; skpart imported from {skpart_dir}, checkout at "
        f"{git_head()}.",
        "",
        "Data:",
        "",
        *(f"- {d}: {descs[d]}" for d in needed),
        "",
        'Every fit: `init="nndsvda"`, `random_state=0`, in a fresh subprocess; '
        "times are of `fit` alone, errors are `reconstruction_err_`. Memory is "
        "the peak RSS of the subprocess (VmHWM) in MiB; loading the data alone "
        "peaks at "
        + ", ".join(f"{imports[d]['data_mib']:.0f} MiB ({d})" for d in needed)
        + ", and importing skpart (so torch) after scikit-learn's NMF adds "
        + ", ".join(f"{torch_mib[d]:.0f} MiB ({d})" for d in needed)
        + ". Budget = sklearn's peak + that (the issue's memory target). "
        "Budget with first use = sklearn's peak + torch's whole fixed cost in "
        "that setting: the peak of SparseNMF's fit of the first "
        f"{TINY_ROWS} rows (10 iterations, same parameters) minus that of "
        "sklearn's; besides the import it holds the pages of torch's "
        "libraries (BLAS, LAPACK, sparse kernels) that their first call maps "
        "in, and the allocators' arenas, none of which grow with the data. Time "
        "ratio = sklearn's time / SparseNMF's, same setting. SparseNMF to "
        "sklearn's error: the smallest `max_iter` with which SparseNMF "
        "(`tol=0`) reaches sklearn's error (the first of "
        f"{', '.join(map(str, SCHEDULE[:9]))}, ... that does, then every count "
        "between it and the one before), the time of that fit, run again "
        "alone, and sklearn's time / that time. "
        "Not reached: the search stopped after a fit longer than "
        f"{args.search_cap:g} x sklearn's time (time cap), or one that improved "
        f"the error by less than {STALL_RTOL:g} relative (stalled), or at "
        f"max_iter {args.search_max_iter}; the cell gives that fit. Topics "
        "matched: sklearn's 20 components whose best-matching "
        f"SparseNMF component has cosine > {MATCH_COSINE}. Load: 1-minute load "
        "average after the row, this benchmark's own 1 or 2 threads included.",
    ]
    for threads, rows in tables.items():
        text += ["", f"## {threads} thread{'s' if threads > 1 else ''}", ""]
        text.append(table(rows, labels, torch_mib, args.timeout))
    report = "\n".join(text) + "\n"
    print("\n" + report)
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(report)
        print(f"written to {out_path}")


if __name__ == "__main__":
    main()
