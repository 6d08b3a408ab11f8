"""Shared fixtures: random data, digits and MNIST subsets."""

import os
from pathlib import Path

# MKL (torch's CPU BLAS) may split a product differently from run to run on a
# loaded machine, which moves the last bits of a result; its conditional
# numerical reproducibility mode does not. The tests compare runs bitwise.
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def mnist_home():
    """Folder holding ``mnist/``: ``SKPART_DATA`` if set, else ``../shared/data``."""
    home = os.environ.get("SKPART_DATA")
    candidates = [Path(home)] if home else []
    candidates.append(SHARED_DATA)
    for path in candidates:
        if (path / "mnist").is_dir():
            return path
    return None


@pytest.fixture
def rng():
    """A fresh NumPy generator with a fixed seed."""
    return np.random.RandomState(0)


@pytest.fixture
def X_small(rng):
    """A 30 x 12 non-negative float64 matrix of rank about 4."""
    W = rng.rand(30, 4)
    H = rng.rand(4, 12)
    return W @ H + 0.01 * rng.rand(30, 12)


@pytest.fixture(scope="session")
def digits():
    """sklearn's 8x8 digits scaled to [0, 1] (float64), with labels."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="session")
def mnist_train_2000():
    """The first 2000 MNIST training digits (float32, (2000, 784)) and labels."""
    home = mnist_home()
    if home is None:
        pytest.skip("MNIST files not found: set SKPART_DATA to the data folder")
    from skpart.datasets import load_mnist

    X, y = load_mnist(data_home=home, split="train", download=False)
    return X[:2000], y[:2000]


@pytest.fixture(scope="session")
def mnist_test_1000():
    """The first 1000 MNIST test digits (float32) and labels."""
    home = mnist_home()
    if home is None:
        pytest.skip("MNIST files not found: set SKPART_DATA to the data folder")
    from skpart.datasets import load_mnist

    X, y = load_mnist(data_home=home, split="test", download=False)
    return X[:1000], y[:1000]
