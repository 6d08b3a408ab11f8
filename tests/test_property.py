"""Property-based checks: random non-negative matrices, random shapes and ranks."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF


@st.composite
def problems(draw):
    n = draw(st.integers(2, 12))
    d = draw(st.integers(2, 10))
    k = draw(st.integers(1, d))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    X = rng.rand(n, d) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    # Random zeros, sometimes whole rows or columns.
    X[rng.rand(n, d) < draw(st.sampled_from([0.0, 0.3, 0.8]))] = 0.0
    return X, k


def make(name, k):
    if name == "SparseNMF":
        return SparseNMF(k, max_iter=30, random_state=0)
    if name == "SparseNMF-sparse":
        return SparseNMF(
            k,
            max_iter=30,
            sparseness_components=0.5,
            sparseness_codes=0.5,
            random_state=0,
        )
    if name == "MultilayerNMF":
        return MultilayerNMF(
            (k, max(1, k // 2)), max_iter=20, fine_tune_iter=5, random_state=0
        )
    return NonnegativeSparseAutoencoder(k, max_iter=3, batch_size=4, random_state=0)


@pytest.mark.parametrize(
    "name",
    ["SparseNMF", "SparseNMF-sparse", "MultilayerNMF", "NonnegativeSparseAutoencoder"],
)
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(problem=problems())
def test_finite_nonnegative_codes_and_atoms(name, problem):
    X, k = problem
    model = make(name, k)
    codes = model.fit_transform(X)
    n_out = model.n_components_
    assert codes.shape == (X.shape[0], n_out)
    assert model.components_.shape == (n_out, X.shape[1])
    for A in (codes, model.components_):
        assert np.all(np.isfinite(A))
        assert A.min() >= 0
