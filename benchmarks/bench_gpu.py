"""GPU figures of issue 16: SparseNMF, the autoencoder, the Hoyer-constrained
fit, MultilayerNMF and sparse input on CUDA, side by side in one run.

Run on a machine with a CUDA GPU (needs ``SKPART_DATA``; about 3 minutes of GPU
time, most of it scikit-learn's CPU fit)::

    python benchmarks/bench_gpu.py             # 60 000 MNIST digits, k = 100
    python benchmarks/bench_gpu.py --quick     # 10 000 digits, k = 50
    python benchmarks/bench_gpu.py --sklearn 48.3 639.81   # reuse sklearn's figures

Rows:

1. scikit-learn ``NMF(solver="cd", init="nndsvda", tol=0, max_iter=100)`` on
   this machine's CPU cores, once (its time and error are the target); then
   SparseNMF on CUDA with the fewest iterations that reach that error
   (doubling, then bisection: ``bench_sparse_nmf_speed.iterations_to_reach``),
   timed as ``fit`` (validation, init and the copy back included).
2. What the hardware allows: a plain HALS iteration written by hand (column
   by column), eager and replayed as a CUDA graph, and its six products alone;
   the torch ops and host syncs that one SparseNMF iteration dispatches.
3. The autoencoder's epoch (k = 100, batch 64 and 256): skpart's training
   loop (CUDA graphs) against the eager hand-written loop on the same GPU
   (``bench_autoencoder_speed.cuda_epoch_seconds``).
4. SparseNMF with ``sparseness_codes=0.663, alpha_W=0.00086, l1_ratio=0,
   tol=1e-6`` fitted on the 10 000 test digits; ``MultilayerNMF((200, 100),
   max_iter=100, fine_tune_iter=50)`` on the training digits.
5. Sparse input: a random CSR 200 000 x 20 000 (density 0.001), k = 50, 20
   cd iterations, on CUDA and on the CPU.

The table goes to ``benchmarks/results/bench_gpu.md`` (``bench_gpu_quick.md``
with ``--quick``).
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning

from skpart import MultilayerNMF, SparseNMF
from skpart._core._device import make_generator
from skpart._core._init import initialize_nmf
from skpart._core._nmf import ExtrapolatedHALS, Penalties
from skpart._core._operator import DataOperator
from skpart._core._updates import factor_update
from skpart.datasets import load_mnist
from skpart.utils._dispatch_probe import DispatchProbe

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_sparse_nmf_speed import iterations_to_reach  # noqa: E402

DATA = os.environ.get("SKPART_DATA", str(HERE.parents[1] / "shared" / "data"))
OUT = Path(os.environ.get("SKPART_BENCH_OUT", HERE / "results"))


def timed(make, X, repeat=1):
    """Best wall time of ``make().fit(X)`` over ``repeat`` runs, and the model."""
    best, model = None, None
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            model = make().fit(X)
            t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return best, model


def cuda_ms(fn, n):
    """Milliseconds per call of ``fn`` over ``n`` calls (CUDA events)."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


def plain_hals_reference(X, k):
    """ms per iteration of a hand-written HALS iteration (one column at a
    time, both factors), eager and as a replayed CUDA graph, and of its six
    matrix products alone."""
    Xc = torch.as_tensor(X, device="cuda")
    W, H = initialize_nmf(Xc, k, "nndsvda", generator=make_generator(0))
    W, H = W.contiguous(), H.contiguous()

    def sweep(F, G, B):  # F (k, r) updated in place, rows one at a time
        for t in range(F.shape[0]):
            g = G[t] @ F - B[t]
            F[t] = (F[t] - g / G[t, t].clamp(min=1e-30)).clamp(min=0)

    def iteration():
        Wt = W.mT.contiguous()
        sweep(Wt, H @ H.mT, H @ Xc.mT)
        W.copy_(Wt.mT)
        sweep(H, W.mT @ W, W.mT @ Xc)

    def products():
        H @ H.mT, H @ Xc.mT, W.mT @ W, W.mT @ Xc, H @ H.mT, W.mT @ W

    eager = cuda_ms(iteration, 5)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        iteration()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        iteration()
    return eager, cuda_ms(graph.replay, 20), cuda_ms(products, 20)


def iteration_ops(X, k):
    """aten ops and host syncs of one SparseNMF cd iteration on CUDA (the
    fused Triton sweeps, when used, are one launch per factor besides)."""
    Xc = torch.as_tensor(X, device="cuda")
    W, H = initialize_nmf(Xc, k, "nndsvda", generator=make_generator(0))
    updates = tuple(
        factor_update(solver="cd", sparseness=None, codes=c, l1=0, l2=0, beta=2.0)
        for c in (True, False)
    )
    run = ExtrapolatedHALS(
        DataOperator(Xc),
        W,
        H,
        updates=updates,
        penalties=Penalties(),
        sparseness_W=None,
        sparseness_H=None,
    )
    run.iterate(True, True)
    with DispatchProbe() as probe:
        run.iterate(False, False)
    return probe.kernels, len(probe.syncs)


def section_sparse_nmf(X, k, sklearn_figures):
    """Rows 1 and 2: SparseNMF on CUDA to sklearn's 100-iteration error, and
    the hand-written reference."""
    kw = dict(n_components=k, init="nndsvda", solver="cd", tol=0)
    if sklearn_figures:
        t_sk, target = sklearn_figures
        sk_note = "given with --sklearn"
    else:
        t_sk, sk = timed(lambda: NMF(max_iter=100, random_state=0, **kw), X)
        target, sk_note = sk.reconstruction_err_, "measured in this run"
    print(f"sklearn: {t_sk:.2f} s, error {target:.4f}", flush=True)
    timed(lambda: SparseNMF(max_iter=12, random_state=0, device="cuda", **kw), X)
    it = iterations_to_reach(X, kw, target, 400, "cuda")
    t_gpu = None
    if it is not None:
        make = lambda: SparseNMF(max_iter=it, random_state=0, device="cuda", **kw)  # noqa: E731
        t_gpu = timed(make, X, repeat=3)[0]
    lines = [
        f"## SparseNMF to sklearn's error after 100 cd iterations ({target:.2f})",
        "",
        "| model | iterations | seconds | speed-up vs sklearn |",
        "|---|---|---|---|",
        f"| sklearn NMF cd, {os.cpu_count()} CPU cores ({sk_note}) | 100 | "
        f"{t_sk:.2f} | 1.0x |",
        f"| SparseNMF cd, CUDA | {it} | "
        + (f"{t_gpu:.3f} | {t_sk / t_gpu:.0f}x |" if t_gpu else "- | not reached |"),
        "",
    ]
    eager, graph, products = plain_hals_reference(X, k)
    ops, syncs = iteration_ops(X, k)
    return lines + [
        "What the hardware allows (ms per iteration, same GPU): hand-written "
        f"HALS eager {eager:.2f}, replayed as a CUDA graph {graph:.2f}, its six "
        f"products alone {products:.2f}. One SparseNMF cd iteration dispatches "
        f"{ops} torch ops and {syncs} host syncs (plus one fused Triton launch "
        "per factor when Triton is installed).",
        "",
    ]


def section_autoencoder(X):
    """Row 3: the autoencoder's epoch against the hand-written loop."""
    from bench_autoencoder_speed import cuda_epoch_seconds

    lines = [
        "## Autoencoder, k = 100: seconds per epoch",
        "",
        "| batch | skpart (CUDA graphs) | skpart eager | hand-written eager | "
        "speed-up vs hand-written |",
        "|---|---|---|---|---|",
    ]
    for batch in (64, 256):
        s = cuda_epoch_seconds(X, batch_size=batch)
        lines.append(
            f"| {batch} | {s['skpart']:.3f} | {s['skpart eager']:.3f} | "
            f"{s['hand-written eager']:.3f} | "
            f"{s['hand-written eager'] / s['skpart']:.1f}x |"
        )
    return lines + [""]


def section_constrained(X, X_test, n):
    """Row 4: the Hoyer-constrained fit and MultilayerNMF."""
    hoyer = dict(
        n_components=100,
        sparseness_codes=0.663,
        alpha_W=0.00086,
        l1_ratio=0.0,
        tol=1e-6,
        max_iter=1000,
        random_state=0,
        device="cuda",
    )
    X_small = np.ascontiguousarray(X_test[:2000])
    timed(lambda: SparseNMF(**{**hoyer, "max_iter": 5}), X_small)
    t_hoyer, m_hoyer = timed(lambda: SparseNMF(**hoyer), X_test, repeat=2)
    deep = dict(max_iter=100, fine_tune_iter=50, random_state=0, device="cuda")
    timed(lambda: MultilayerNMF((200, 100), **{**deep, "max_iter": 3}), X_small)
    t_deep, _ = timed(lambda: MultilayerNMF((200, 100), **deep), X, repeat=2)
    return [
        "## Constrained and multilayer fits on CUDA",
        "",
        "| fit | seconds | iterations | target |",
        "|---|---|---|---|",
        f"| SparseNMF(100, sparseness_codes=0.663, alpha_W=0.00086, l1_ratio=0, "
        f"tol=1e-6), 10 000 test digits | {t_hoyer:.2f} | {m_hoyer.n_iter_} | "
        "<= 1.5 s |",
        f"| MultilayerNMF((200, 100), max_iter=100, fine_tune_iter=50), {n} "
        f"digits | {t_deep:.2f} | - | <= 1.5 s |",
        "",
    ]


def section_sparse():
    """Row 5: sparse input on CUDA and on the CPU."""
    R = sp.random(200_000, 20_000, density=0.001, format="csr", rng=0)
    R = R.astype(np.float32)
    kw = dict(n_components=50, init="nndsvda", tol=0, max_iter=20, random_state=0)
    timed(lambda: SparseNMF(**{**kw, "max_iter": 2}, device="cuda"), R[:5000])
    fits = {
        dev: timed(lambda d=dev: SparseNMF(**kw, device=d), R)
        for dev in ("cuda", "cpu")
    }
    return [
        "## Sparse input: random CSR 200 000 x 20 000 (density 0.001, float32), "
        "k = 50, 20 cd iterations",
        "",
        "| device | seconds | error |",
        "|---|---|---|",
        *(
            f"| {d} | {t:.2f} | {m.reconstruction_err_:.4f} |"
            for d, (t, m) in fits.items()
        ),
        "",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--sklearn",
        nargs=2,
        type=float,
        metavar=("SECONDS", "ERROR"),
        help="sklearn's time and error, measured earlier on this machine",
    )
    args = parser.parse_args()
    t_start = time.perf_counter()
    n, k = (10_000, 50) if args.quick else (60_000, 100)
    X_all, _ = load_mnist(data_home=DATA, split="train", download=False)
    X = np.ascontiguousarray(X_all[:n])
    X_test, _ = load_mnist(data_home=DATA, split="test", download=False)
    lines = [
        f"# GPU benchmark: {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU "
        f"cores, torch {torch.__version__}, MNIST {n} x 784 float32, k = {k}",
        "",
    ]
    sections = [
        ("SparseNMF", lambda: section_sparse_nmf(X, k, args.sklearn)),
        ("autoencoder", lambda: section_autoencoder(X)),
        ("constrained", lambda: section_constrained(X, X_test, n)),
        ("sparse", section_sparse),
    ]
    for name, run in sections:
        # A failing section is reported and the others still run: a GPU
        # session is short.
        try:
            part = run()
        except Exception as exc:  # noqa: BLE001
            part = [f"## {name}: failed with {type(exc).__name__}: {exc}", ""]
        print("\n".join(part), flush=True)
        lines += part
    lines.append(f"Whole run: {time.perf_counter() - t_start:.0f} s.")
    text = "\n".join(lines)
    OUT.mkdir(parents=True, exist_ok=True)
    name = "bench_gpu_quick.md" if args.quick else "bench_gpu.md"
    (OUT / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
