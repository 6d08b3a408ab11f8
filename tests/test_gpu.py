"""The CUDA path: same results as the CPU, and GPU-fitted models load on a CPU."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

MODELS = {
    "SparseNMF": lambda dev: SparseNMF(
        8, init="nndsvda", max_iter=100, tol=0, random_state=0, device=dev
    ),
    "SparseNMF-sparse": lambda dev: SparseNMF(
        8,
        init="nndsvda",
        max_iter=50,
        tol=0,
        sparseness_components=0.6,
        sparseness_codes=0.4,
        random_state=0,
        device=dev,
    ),
    "MultilayerNMF": lambda dev: MultilayerNMF(
        (12, 6), max_iter=50, fine_tune_iter=20, random_state=0, device=dev
    ),
    "NonnegativeSparseAutoencoder": lambda dev: NonnegativeSparseAutoencoder(
        8, max_iter=3, batch_size=64, random_state=0, device=dev
    ),
}


@cuda
@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_matches_cpu(name, digits):
    X = digits[0][:500]
    cpu = MODELS[name]("cpu").fit(X)
    gpu = MODELS[name]("cuda").fit(X)
    assert isinstance(gpu.components_, np.ndarray)
    err_cpu = np.mean((X - cpu.inverse_transform(cpu.transform(X))) ** 2)
    err_gpu = np.mean((X - gpu.inverse_transform(gpu.transform(X))) ** 2)
    assert err_cpu > 0
    # The same starting point (drawn on the CPU) and the same updates: the
    # errors agree to float tolerance (iterations amplify rounding a little).
    assert err_gpu == pytest.approx(err_cpu, rel=1e-3)


@cuda
@pytest.mark.parametrize("name", list(MODELS))
def test_auto_device_and_cpu_loading(name, digits, tmp_path):
    X = digits[0][:200]
    model = MODELS[name]("auto").fit(X)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "codes.npy", model.transform(X))
    # Load and use it in a process that sees no GPU.
    code = (
        "import pickle, numpy as np, torch;"
        "assert not torch.cuda.is_available();"
        f"m = pickle.loads(open({str(path)!r}, 'rb').read());"
        f"X = np.load({str(tmp_path / 'X.npy')!r});"
        f"ref = np.load({str(tmp_path / 'codes.npy')!r});"
        "np.testing.assert_allclose(m.transform(X), ref, rtol=1e-3, atol=1e-5)"
    )
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@cuda
@pytest.mark.parametrize("solver", ["cd", "mu"])
def test_cuda_graph_blocks_match_eager_blocks(solver, digits, monkeypatch):
    # The blocks of iterations replayed from a CUDA graph run the same
    # kernels as the eager blocks.
    from skpart._core import _nmf

    X = digits[0][:600].astype(np.float32)
    params = dict(init="nndsvda", solver=solver, max_iter=45, tol=0, random_state=0)
    graphed = SparseNMF(10, device="cuda", **params).fit(X)
    monkeypatch.setattr(_nmf, "can_capture", lambda device: False)
    eager = SparseNMF(10, device="cuda", **params).fit(X)
    np.testing.assert_allclose(graphed.components_, eager.components_, rtol=1e-5)
    assert graphed.reconstruction_err_ == pytest.approx(eager.reconstruction_err_)


@cuda
@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_cd_iteration_has_no_host_sync_on_cuda(layout, digits):
    from skpart._core._device import make_generator
    from skpart._core._init import initialize_nmf
    from skpart._core._nmf import ExtrapolatedHALS, Penalties
    from skpart._core._operator import DataOperator
    from skpart._core._updates import factor_update

    X = torch.tensor(digits[0][:500], device="cuda")
    if layout == "csr":
        X = X.to_sparse_csr()
    W, H = initialize_nmf(X, 8, "nndsvda", generator=make_generator(0))
    updates = tuple(
        factor_update(solver="cd", sparseness=None, codes=c) for c in (True, False)
    )
    run = ExtrapolatedHALS(
        DataOperator(X),
        W,
        H,
        updates=updates,
        penalties=Penalties(),
        sparseness_W=None,
        sparseness_H=None,
    )
    run.iterate(True, True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for rebalance in (True, False):
            run.iterate(rebalance, False)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@cuda
def test_sparse_input_on_cuda_matches_cpu(digits):
    import scipy.sparse as sp

    X = sp.csr_matrix(digits[0][:500])
    params = dict(init="nndsvda", max_iter=60, tol=0, random_state=0)
    cpu = SparseNMF(8, device="cpu", **params).fit(X)
    gpu = SparseNMF(8, device="cuda", **params).fit(X)
    assert gpu.reconstruction_err_ == pytest.approx(cpu.reconstruction_err_, rel=1e-4)
    np.testing.assert_allclose(gpu.transform(X), cpu.transform(X), rtol=1e-3, atol=1e-6)
