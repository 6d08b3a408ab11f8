"""Compare the NMF core of two checkouts output by output (refactors, same iterates).

Runs ``fit_nmf`` (every solver, dense / CSR / float32, penalties, sparseness
targets, shuffle), ``solve_codes`` on each result, the multilayer pass and
fine-tuning, and online steps, and saves every output array; ``compare``
prints the largest relative difference per case. Run each checkout with its
own ``PYTHONPATH`` and the same thread count::

    PYTHONPATH=/path/to/old python benchmarks/core_equivalence.py run old.pkl
    PYTHONPATH=/path/to/new python benchmarks/core_equivalence.py run new.pkl
    python benchmarks/core_equivalence.py compare old.pkl new.pkl
"""

import pickle
import sys
import warnings

import numpy as np


def _scenarios():
    import scipy.sparse as sp
    import torch
    from sklearn.datasets import load_digits

    from skpart._core._device import make_generator
    from skpart._core._init import initialize_nmf
    from skpart._core._multilayer import fine_tune, fit_layers
    from skpart._core._nmf import fit_nmf, solve_codes
    from skpart._core._online import OnlineNMF, minibatch_step

    X = load_digits().data / 16.0
    Xs = sp.csr_matrix(np.where(X > 0.5, X, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        Xs_t = torch.sparse_csr_tensor(
            torch.from_numpy(Xs.indptr.astype(np.int64)),
            torch.from_numpy(Xs.indices.astype(np.int64)),
            torch.from_numpy(Xs.data),
            size=Xs.shape,
        )
    Xd = torch.from_numpy(X)
    fits = [
        ("cd", {}),
        ("mu", {}),
        ("cd", {"sparseness_H": 0.6}),
        ("cd", {"sparseness_W": 0.5}),
        ("mu", {"sparseness_H": 0.6}),
        ("cd", {"l1_reg_W": 0.1, "l2_reg_H": 0.2}),
        ("mu", {"beta_loss": 1.0}),
        ("mu", {"beta_loss": 0.5, "l1_reg_H": 0.01}),
        ("cd", {"shuffle": True}),
    ]
    codes = [
        ("cd", {}),
        ("mu", {}),
        ("cd", {"sparseness_W": 0.5}),
        ("mu", {"beta_loss": 1.0}),
        ("cd", {"l1_reg_W": 0.05}),
    ]
    out = {}
    for name, data in [("dense", Xd), ("sparse", Xs_t), ("f32", Xd.float())]:
        for k in (8, 20):
            W, H = initialize_nmf(data, k, "nndsvda", generator=make_generator(0))
            for solver, kw in fits:
                gen = make_generator(3) if kw.get("shuffle") else None
                r = fit_nmf(data, W, H, solver=solver, max_iter=60, generator=gen, **kw)
                key = f"fit/{name}/{k}/{solver}/{sorted(kw.items())}"
                out[key] = (r[0].numpy(), r[1].numpy(), r[2])
                for s2, kw2 in codes:
                    c = solve_codes(data, r[1], solver=s2, max_iter=100, **kw2)
                    out[f"{key}/codes/{s2}/{sorted(kw2.items())}"] = (
                        c[0].numpy(),
                        c[1],
                    )
    ml = fit_layers(
        Xd, (20, 8), inits=["nndsvda"] * 2, max_iter=50, generator=make_generator(0)
    )
    W, layers = ml[0], ml[1]
    out["ml/layers"] = ([h.numpy() for h in layers], ml[2])
    constrained = {"sparseness_codes": 0.5, "sparseness_components": [0.6, None]}
    for key, kw in [("ft", {}), ("ft_sp", constrained)]:
        r = fine_tune(Xd, W, layers, max_iter=20, tol=1e-5, **kw)
        out[f"ml/{key}"] = (r[0].numpy(), [h.numpy() for h in r[1]], r[2], r[3])
    for kw in [{}, {"sparseness_H": 0.6}, {"solver": "mu"}]:
        _, H0 = initialize_nmf(Xd, 10, "nndsvda", generator=make_generator(0))
        state = OnlineNMF.start(H0, kw.get("sparseness_H"))
        steps = [
            minibatch_step(state, Xd[i : i + 100], rho=0.9, **kw)[1:]
            for i in range(0, 600, 100)
        ]
        out[f"online/{sorted(kw.items())}"] = (state.H.numpy(), steps)
    return out


def _arrays(x):
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, (list, tuple)):
        return [a for e in x for a in _arrays(e)]
    return [np.asarray(x, dtype=float)]


def compare(a, b):
    """Largest relative difference of every case, printed when not 0."""
    worst = 0.0
    for key in a:
        diffs = [
            np.inf
            if x.shape != y.shape
            else float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-300))
            if x.size
            else 0.0
            for x, y in zip(_arrays(a[key]), _arrays(b[key]))
        ]
        worst = max(worst, max(diffs))
        if max(diffs) > 0:
            print(f"{max(diffs):.2e} {key}")
    print(f"{len(a)} cases, largest relative difference {worst:.2e}")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        with open(sys.argv[2], "wb") as f:
            pickle.dump(_scenarios(), f)
    else:
        with open(sys.argv[2], "rb") as fa, open(sys.argv[3], "rb") as fb:
            compare(pickle.load(fa), pickle.load(fb))
