"""MultilayerNMF on MNIST: what fine-tuning buys, and three models side by side.

Two tables, both on the first 10 000 MNIST training digits (fit) and the first
2 000 test digits (evaluation):

1. ``MultilayerNMF((100, 30))`` with ``fine_tune_iter=0`` (the stacked model of
   the layer-wise pass) against the same model fine-tuned: the test
   reconstruction error (mean squared error per pixel, codes from
   ``transform``) and its relative decrease.
2. ``MultilayerNMF((100, 30))``, ``MultilayerNMF((200, 100, 30))`` and
   ``SparseNMF(30)`` (with scikit-learn's ``NMF(30)`` as a reference): test
   reconstruction error, and the accuracy of an RBF SVC (after standard
   scaling) trained on the training codes and scored on the test codes.

Run ``python benchmarks/bench_multilayer.py`` (minutes on two CPU cores) or
``--quick`` (2 000 / 500 digits, fewer iterations: a smoke run). The tables go
to stdout and, for the full run, to ``benchmarks/results/bench_multilayer.md``.
Set ``SKPART_DATA`` to the folder holding ``mnist/`` if it is not
``../shared/data``.
"""

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import sklearn
import torch
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import skpart
from skpart import MultilayerNMF, SparseNMF
from skpart.datasets import load_mnist
from skpart.metrics import reconstruction_error

RESULTS = Path(__file__).resolve().parent / "results" / "bench_multilayer.md"


def data_home():
    home = os.environ.get("SKPART_DATA")
    if home:
        return Path(home)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def load(n_train, n_test):
    X, y = load_mnist(data_home=data_home(), split="train", download=False)
    Xt, yt = load_mnist(data_home=data_home(), split="test", download=False)
    return X[:n_train], y[:n_train], Xt[:n_test], yt[:n_test]


def evaluate(label, make, data, *, svc=True):
    """Fit ``make()`` on the training digits; test error and SVC accuracy."""
    X, y, Xt, yt = data
    model = make()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # The iteration caps are part of the settings compared here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        codes = model.fit_transform(X)
        fit_s = time.perf_counter() - t0
        err = reconstruction_error(model, Xt)
        test_codes = model.transform(Xt)
    row = {"model": label, "fit_s": fit_s, "test_mse": err}
    if svc:
        clf = make_pipeline(StandardScaler(), SVC()).fit(codes, y)
        row["svc_acc"] = float(clf.score(test_codes, yt))
    if isinstance(model, MultilayerNMF):
        row["sweeps"] = model.n_iter_
        row["layer_iters"] = ", ".join(map(str, model.n_iter_layers_))
        row["loss0"] = model.loss_curve_[0]
    return row, model


def table(rows, columns):
    head = "| " + " | ".join(name for name, _, _ in columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns)))
    lines = [head, rule + "|"]
    for row in rows:
        cells = [
            fmt.format(row[key]) if row.get(key) is not None else "-"
            for _, key, fmt in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args()
    quick = args.quick
    n_train, n_test = (2000, 500) if quick else (10000, 2000)
    it, ft = (50, 30) if quick else (200, 100)
    data = load(n_train, n_test)

    def mnmf(ranks, **kw):
        return lambda: MultilayerNMF(
            ranks, max_iter=it, fine_tune_iter=ft, random_state=0, **kw
        )

    out = [
        f"# MultilayerNMF on MNIST ({n_train} train / {n_test} test digits)",
        "",
        f"skpart {skpart.__version__}, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads. Layers: max_iter={it}; "
        f"fine-tuning: fine_tune_iter={ft}, tol=1e-4; random_state=0. Test error: "
        "mean squared error per pixel of `inverse_transform(transform(X_test))` "
        "(`skpart.metrics.reconstruction_error`). Fit times are wall-clock on a "
        "shared machine: indicative only.",
        "",
        "## Fine-tuning against stacking, ranks (100, 30)",
        "",
    ]
    print("\n".join(out))

    stacked, _ = evaluate(
        "stacked (fine_tune_iter=0)",
        lambda: MultilayerNMF((100, 30), max_iter=it, fine_tune_iter=0, random_state=0),
        data,
    )
    tuned, tuned_model = evaluate("fine-tuned", mnmf((100, 30)), data)
    gain = 1 - tuned["test_mse"] / stacked["test_mse"]
    part1 = table(
        [stacked, tuned],
        [
            ("model", "model", "{}"),
            ("test MSE", "test_mse", "{:.5f}"),
            ("SVC acc.", "svc_acc", "{:.3f}"),
            ("layer iterations", "layer_iters", "{}"),
            ("fine-tuning sweeps", "sweeps", "{}"),
            ("fit (s)", "fit_s", "{:.1f}"),
        ],
    )
    curve = tuned_model.loss_curve_
    part1 += (
        f"\n\nFine-tuning lowers the test error by **{100 * gain:.1f}%**. Training "
        f"objective 0.5 ||X - W C||^2: {curve[0]:.1f} stacked, {curve[-1]:.1f} "
        f"after {len(curve) - 1} sweeps."
    )
    if stacked["loss0"] != tuned["loss0"]:
        part1 += (
            "\n\n**Warning**: the two fits did not run the same layer-wise pass "
            f"(stacked objective {stacked['loss0']!r} vs {tuned['loss0']!r})."
        )
    print(part1 + "\n")

    rows = [
        stacked | {"model": "MultilayerNMF((100, 30)), fine_tune_iter=0"},
        tuned | {"model": "MultilayerNMF((100, 30))"},
    ]
    for label, make in [
        (
            "MultilayerNMF((200, 100, 30)), fine_tune_iter=0",
            lambda: MultilayerNMF(
                (200, 100, 30), max_iter=it, fine_tune_iter=0, random_state=0
            ),
        ),
        ("MultilayerNMF((200, 100, 30))", mnmf((200, 100, 30))),
        (
            "SparseNMF(30)",
            lambda: SparseNMF(30, max_iter=it, random_state=0),
        ),
        (
            "sklearn NMF(30) (reference)",
            lambda: NMF(30, init="nndsvda", max_iter=it, random_state=0),
        ),
    ]:
        row, _ = evaluate(label, make, data)
        rows.append(row)
        print(f"done: {label}")
    part2 = table(
        rows,
        [
            ("model", "model", "{}"),
            ("test MSE", "test_mse", "{:.5f}"),
            ("SVC acc.", "svc_acc", "{:.3f}"),
            ("layer iterations", "layer_iters", "{}"),
            ("stacked objective", "loss0", "{:.1f}"),
            ("fine-tuning sweeps", "sweeps", "{}"),
            ("fit (s)", "fit_s", "{:.1f}"),
        ],
    )
    part2 = (
        "## Three models, 30 codes each\n\nSVC: `make_pipeline(StandardScaler(), "
        "SVC())` (RBF, C=1) fitted on the training codes (`fit_transform`), "
        "scored on the test codes (`transform`). Stacked objective: "
        "`loss_curve_[0]`, 0.5 ||X - W C||^2 on the training digits after the "
        "layer-wise pass (equal within a pair: the same pass).\n\n" + part2
    )
    print("\n" + part2)
    out += [part1, "", part2, ""]
    out.append(
        "Reproduce: `.venv/bin/python benchmarks/bench_multilayer.py`"
        + (" --quick" if quick else "")
    )
    if not quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text("\n".join(out) + "\n")
        print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
