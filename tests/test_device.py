"""Device and dtype resolution, seeding and the numpy <-> torch boundary."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skpart._core._device import (
    make_generator,
    rand,
    randn,
    randperm,
    resolve_device,
    resolve_dtype,
)
from skpart._estimators._base import to_numpy, to_tensor


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(RuntimeError, match="device"):
        resolve_device("gpu0")


def test_resolve_dtype_follows_input():
    assert resolve_dtype("float32") is torch.float32
    assert resolve_dtype(np.dtype("float64")) is torch.float64
    assert resolve_dtype(torch.float32) is torch.float32
    assert resolve_dtype("int64") is torch.float64
    assert resolve_dtype(torch.float16) is torch.float64


def test_generator_determinism_and_independence():
    a = rand((3, 4), make_generator(7), dtype=torch.float32, device="cpu")
    b = rand((3, 4), make_generator(7), dtype=torch.float32, device="cpu")
    c = rand((3, 4), make_generator(8), dtype=torch.float32, device="cpu")
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # The global torch RNG is neither used nor changed.
    state = torch.random.get_rng_state()
    randn((5,), make_generator(1), dtype=torch.float64, device="cpu")
    assert torch.equal(state, torch.random.get_rng_state())
    p = randperm(10, make_generator(3), device="cpu")
    assert sorted(p.tolist()) == list(range(10))
    assert torch.equal(p, randperm(10, make_generator(3), device="cpu"))


def test_dtype_of_draws():
    g = make_generator(0)
    assert rand((2,), g, dtype=torch.float32, device="cpu").dtype == torch.float32
    assert randn((2,), g, dtype=torch.float64, device="cpu").dtype == torch.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_boundary_conversion_round_trip(dtype):
    X = np.arange(12, dtype=dtype).reshape(3, 4)
    t = to_tensor(X, device=torch.device("cpu"))
    assert t.dtype == torch.from_numpy(X).dtype
    np.testing.assert_array_equal(to_numpy(t), X)
    S = sp.random(5, 6, density=0.4, format="csc", dtype=dtype, random_state=0)
    ts = to_tensor(S, device=torch.device("cpu"))
    assert ts.layout == torch.sparse_csr
    np.testing.assert_array_equal(to_numpy(ts.to_dense()), S.toarray())
