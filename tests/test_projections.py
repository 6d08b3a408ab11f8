"""The batched Hoyer projection and the non-negative projection of the core."""

import math

import numpy as np
import pytest
import torch

from skpart._core._projections import (
    l1_for_sparseness,
    project_l1_l2,
    project_nonnegative,
    project_sparseness,
)


def hoyer(x):
    n = x.shape[1]
    ratio = x.abs().sum(1) / torch.linalg.vector_norm(x, dim=1)
    return (math.sqrt(n) - ratio) / (math.sqrt(n) - 1)


def hoyer_projfunc(s, k1, k2):
    """Hoyer's (2004) projfunc for non-negative vectors, transcribed from MATLAB."""
    N = len(s)
    v = s + (k1 - s.sum()) / N
    zerocoeff = np.zeros(N, dtype=bool)
    while True:
        midpoints = np.full(N, k1 / (N - zerocoeff.sum()))
        midpoints[zerocoeff] = 0
        w = v - midpoints
        a, b, c = w @ w, 2 * w @ v, v @ v - k2
        v = v + (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a) * w
        if (v >= 0).all():
            return v
        zerocoeff = v <= 0
        v[zerocoeff] = 0
        v = v + (k1 - v.sum()) / (N - zerocoeff.sum())
        v[zerocoeff] = 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("s", [0.0, 0.05, 0.3, 0.6, 0.8, 0.95, 0.999, 1.0])
def test_exact_sparseness_norms_nonnegativity(dtype, s):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 100, generator=g, dtype=dtype).abs()
    p = project_sparseness(x, s, l2=1.0)
    assert p.dtype == dtype
    assert (p >= 0).all()
    np.testing.assert_allclose(hoyer(p), s, atol=1e-6)
    np.testing.assert_allclose(torch.linalg.vector_norm(p, dim=1), 1.0, atol=2e-5)
    np.testing.assert_allclose(p.sum(1), l1_for_sparseness(s, 100), rtol=2e-6)


def test_matches_hoyer_projfunc():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 50, generator=g, dtype=torch.float64)
    l1 = l1_for_sparseness(0.7, 50)
    p = project_l1_l2(x, l1, 1.0).numpy()
    ref = np.stack([hoyer_projfunc(r.numpy(), l1, 1.0) for r in x])
    np.testing.assert_allclose(p, ref, atol=1e-10)


def test_is_closest_point_among_feasible_perturbations():
    # The projection is no farther from x than other feasible points near it.
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 40, generator=g, dtype=torch.float64)
    p = project_sparseness(x, 0.6, l2=1.0)
    best = torch.linalg.vector_norm(x - p)
    for _ in range(200):
        q = project_sparseness(p + 0.05 * torch.randn(p.shape, generator=g), 0.6, 1.0)
        assert torch.linalg.vector_norm(x - q) >= best - 1e-12


def test_per_row_targets_and_keep_norm():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 30, generator=g, dtype=torch.float64) * 5
    norms = torch.linalg.vector_norm(x, dim=1)
    p = project_sparseness(x, 0.5)
    np.testing.assert_allclose(torch.linalg.vector_norm(p, dim=1), norms, rtol=1e-12)
    l2 = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    l1 = l1_for_sparseness(
        torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64), 30, l2
    )
    p = project_l1_l2(x, l1, l2)
    np.testing.assert_allclose(hoyer(p), [0.2, 0.4, 0.6, 0.8], atol=1e-10)


def test_edge_cases_zero_constant_ties_and_ends():
    x = torch.zeros(2, 6)
    p = project_sparseness(x, 0.5)  # zero rows get norm 1
    np.testing.assert_allclose(hoyer(p), 0.5, atol=1e-6)
    assert torch.equal(p[0], p[1])  # deterministic tie-breaking
    const = torch.ones(1, 6)
    p = project_sparseness(const, 0.5, l2=1.0)
    np.testing.assert_allclose(hoyer(p), 0.5, atol=1e-6)
    # Earlier entries win ties.
    assert torch.all(p[0, :-1] >= p[0, 1:])
    # A binary image: many tied maxima, more than the target support holds.
    binary = (torch.arange(100) % 3 == 0).float()[None]
    p = project_sparseness(binary, 0.9, l2=1.0)
    np.testing.assert_allclose(hoyer(p), 0.9, atol=1e-6)
    assert (p[binary == 0] == 0).all()
    # The ends: sparseness 0 is the constant vector, 1 a single entry at argmax.
    y = torch.tensor([[0.1, 0.7, 0.3, 0.7]])
    np.testing.assert_allclose(project_sparseness(y, 0.0, 1.0), 0.5, atol=1e-7)
    p1 = project_sparseness(y, 1.0, 1.0)
    assert torch.equal(p1, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))


def test_negative_input_rows():
    x = -torch.rand(3, 20, dtype=torch.float64)
    p = project_sparseness(x, 0.6, l2=1.0)
    assert (p >= 0).all()
    np.testing.assert_allclose(hoyer(p), 0.6, atol=1e-10)


def test_project_nonnegative_in_place():
    x = torch.tensor([[-1.0, 2.0], [0.5, -0.1]])
    out = project_nonnegative(x)
    assert out is x
    assert torch.equal(x, torch.tensor([[0.0, 2.0], [0.5, 0.0]]))


def test_10000_by_784_in_row_blocks():
    # 10 000 vectors of length 784 span several CPU row blocks of the projection:
    # every row reaches the target, whichever block it fell in. (How fast is the
    # benchmarks' business: a wall-clock bound fails on a busy machine.)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10_000, 784, generator=g)
    p = project_sparseness(x, 0.6, l2=1.0)
    np.testing.assert_allclose(hoyer(p), 0.6, atol=1e-6)
