"""SparseNMF on a dask array spread over a real ``distributed`` cluster.

Starts a scheduler and worker processes from the command line, as a user
would (``dask scheduler`` and ``dask worker --nworkers 1 --nthreads 1
--memory-limit ...``), builds on the workers, block by block, a float32 array
of ``copies`` x 60 000 x 784 (the MNIST training digits, each copy shifted by
up to two pixels; 20 copies are 1 200 000 rows, 3.8 GB), never materialised
on the client, and fits ``SparseNMF(k, init="random")`` on it with one worker
and with two. Reports:

- the client process's peak RSS (``ru_maxrss``) and every worker's;
- the seconds per iteration, with one worker and with two: the median
  duration of the iterations' passes over the blocks in the fit of
  ``--iters`` iterations (``tol=0``), and the difference between that fit
  and one of 2 iterations over the extra iterations;
- the bytes moved per iteration: what the workers sent
  (``transfer_outgoing_bytes_total``: the statistics to the client and the
  partial sums to each other, tensors counted by their size) and what the
  client sent (the pickled message, scattered to every worker);
- the test error ``||X - W H|| / ||X||`` on the 10 000 MNIST test digits of
  the cluster's atoms and of a full-batch in-memory fit on the 60 000
  training digits (same ``k`` and iterations).

    python benchmarks/bench_dask_fit.py [--copies 20 --k 50 --iters 12 \
        --chunk 20000 --memory-limit 6GB]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = os.environ.get("SKPART_DATA", str(HERE.parents[1] / "shared" / "data"))
SHIFTS = [(dy, dx) for dy in (0, 1, -1, 2, -2) for dx in (0, 1, -1, 2)]


def _mnist_block(block, chunk, data_home):
    """Rows ``[block * chunk, (block + 1) * chunk)`` of the shifted copies,
    built on the worker from the MNIST files."""
    import skpart.datasets as cache
    from skpart.datasets import load_mnist

    X = getattr(cache, "_bench_mnist", None)  # loaded once per worker
    if X is None:
        X = load_mnist(data_home=data_home, split="train", download=False)[0]
        cache._bench_mnist = X
    n = X.shape[0]
    rows = np.arange(block * chunk, (block + 1) * chunk)
    out = np.empty((len(rows), 784), dtype=np.float32)
    for copy in np.unique(rows // n):
        mask = rows // n == copy
        dy, dx = SHIFTS[copy % len(SHIFTS)]
        images = X[rows[mask] % n].reshape(-1, 28, 28)
        out[mask] = np.roll(images, (dy, dx), axis=(1, 2)).reshape(-1, 784)
    return out


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sent_bytes(dask_worker):
    return dask_worker.transfer_outgoing_bytes_total


def _worker_peak(dask_worker):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_cluster(n_workers, memory_limit, folder):
    """``dask scheduler`` and ``n_workers`` ``dask worker`` processes."""
    dask_cli = str(Path(sys.executable).with_name("dask"))
    sched_file = os.path.join(folder, f"scheduler-{n_workers}.json")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parent))
    procs = [
        subprocess.Popen(
            [
                dask_cli,
                "scheduler",
                "--scheduler-file",
                sched_file,
                "--port",
                "0",
                "--dashboard-address",
                ":0",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    for _ in range(200):
        if os.path.exists(sched_file):
            break
        time.sleep(0.1)
    for idx in range(n_workers):
        procs.append(
            subprocess.Popen(
                [
                    dask_cli,
                    "worker",
                    "--scheduler-file",
                    sched_file,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    memory_limit,
                    "--name",
                    f"w{idx}",
                    "--local-directory",
                    folder,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return procs, sched_file


class _MessageBytes:
    """Counts the pickled bytes of every message the client scatters."""

    def __init__(self):
        import pickle

        from skpart._estimators import _dask

        self.total, self._pickle = 0, pickle
        self.iteration_seconds = []
        self._step = _dask.DaskBlocks.step
        counter = self

        def step(blocks, func, msg):
            n_workers = len({w for where in blocks.where or [[]] for w in where})
            counter.total += len(pickle.dumps(msg)) * max(n_workers, 1)
            start = time.perf_counter()
            out = counter._step(blocks, func, msg)
            if func.__name__ == "_hals_block":  # one pass per iteration
                counter.iteration_seconds.append(time.perf_counter() - start)
            return out

        _dask.DaskBlocks.step = step


def _fit_on_cluster(args, n_workers, folder):
    import dask.array as da
    from dask import delayed
    from distributed import Client

    from skpart import SparseNMF

    procs, sched_file = _start_cluster(n_workers, args.memory_limit, folder)
    try:
        client = Client(scheduler_file=sched_file)
        client.wait_for_workers(n_workers, timeout=120)
        n = args.copies * 60000
        n_blocks = n // args.chunk
        blocks = [
            da.from_delayed(
                delayed(_mnist_block)(b, args.chunk, DATA),
                (args.chunk, 784),
                dtype=np.float32,
            )
            for b in range(n_blocks)
        ]
        X = da.concatenate(blocks).persist()
        client.wait_for_workers(n_workers)
        from distributed import wait

        wait(X)
        out = {"n_samples": int(X.shape[0]), "n_blocks": n_blocks}
        times, sent = {}, {}
        # Warm-up (imports and first allocations on the workers), not timed.
        SparseNMF(args.k, init="random", max_iter=1, tol=0).fit(X)
        scattered = _MessageBytes()
        for iters in (2, args.iters):
            scattered.iteration_seconds = []
            before = sum(client.run(_sent_bytes).values()) + scattered.total
            model = SparseNMF(
                args.k, init="random", max_iter=iters, tol=0, random_state=0
            )
            start = time.perf_counter()
            model.fit(X)
            times[iters] = time.perf_counter() - start
            after = sum(client.run(_sent_bytes).values()) + scattered.total
            sent[iters] = after - before
        extra = args.iters - 2
        out["fit_seconds"] = times[args.iters]
        out["seconds_per_iteration (fit difference)"] = (
            times[args.iters] - times[2]
        ) / extra
        out["seconds_per_iteration (median pass)"] = float(
            np.median(scattered.iteration_seconds)
        )
        out["bytes_per_iteration"] = (sent[args.iters] - sent[2]) / extra
        out["worker_peak_mb"] = client.run(_worker_peak)
        out["components"] = model.components_
        client.close()
        return out
    finally:
        for proc in procs[::-1]:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def _test_error(components, X_test):
    """``||X - W H|| / ||X||`` with the codes of ``transform`` (200 iterations
    at most, ``tol=1e-4``)."""
    import torch

    from skpart._core._nmf import solve_codes

    H = torch.from_numpy(components)
    W = solve_codes(torch.from_numpy(X_test), H, max_iter=200, tol=1e-4)[0]
    W = W.numpy()
    return float(np.linalg.norm(X_test - W @ components) / np.linalg.norm(X_test))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--iters", type=int, default=12)
    parser.add_argument("--chunk", type=int, default=20000)
    parser.add_argument("--memory-limit", default="6GB")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    from skpart import SparseNMF
    from skpart.datasets import load_mnist

    folder = tempfile.mkdtemp(prefix="skpart-dask-bench-")
    results = {}
    try:
        for n_workers in [int(w) for w in args.workers.split(",")]:
            results[n_workers] = _fit_on_cluster(args, n_workers, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    client_peak = _peak_rss_mb()
    X_train = load_mnist(data_home=DATA, split="train", download=False)[0]
    X_test = load_mnist(data_home=DATA, split="test", download=False)[0]
    ref = SparseNMF(
        args.k, init="random", max_iter=args.iters, tol=0, random_state=0
    ).fit(X_train)
    report = {
        "size": f"{args.copies} x 60000 x 784 float32, chunks of {args.chunk} rows",
        "k": args.k,
        "iterations": args.iters,
        "client_peak_rss_mb (before the in-memory reference)": client_peak,
        "test_error_in_memory_60000": _test_error(ref.components_, X_test),
    }
    for n_workers, out in results.items():
        comps = out.pop("components")
        out["test_error"] = _test_error(comps, X_test)
        report[f"{n_workers} worker(s)"] = out
    if 1 in results and 2 in results:
        report["speed-up 2 vs 1 worker"] = (
            results[1]["seconds_per_iteration (median pass)"]
            / results[2]["seconds_per_iteration (median pass)"]
        )
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
