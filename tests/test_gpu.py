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
