"""Tests of the fused Triton HALS kernel against the torch sweeps.

There is no GPU here: the kernel runs on CPU tensors under Triton's
interpreter. ``TRITON_INTERPRET=1`` must be set before Triton's first import
(Triton jits its own ``tl.sum``, ... then, for the interpreter or for the
GPU), and a process whose Triton is interpreted can no longer compile for a
GPU. So the tests that run the kernel (``needs_interpreter``) run in a child
pytest started by :func:`test_kernel_under_triton_interpreter` with the
variable set; in this process they are skipped, Triton stays as it was
imported, and the rest of the suite never sees the variable.
"""

import os
import re
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

from skpart._core import _triton_hals  # noqa: E402
from skpart._core._hals import hals_sweeps  # noqa: E402
from skpart._core._triton_hals import (  # noqa: E402
    MAX_K,
    available,
    hals_sweeps_triton,
    tile_shape,
)

#: Whether this process is the child: Triton imported under its interpreter.
INTERPRETED = available(torch.zeros(1, 1))
if os.environ.get("SKPART_TRITON_CHILD") == "1" and not INTERPRETED:
    raise RuntimeError("TRITON_INTERPRET=1 is set, yet Triton is not interpreted")
needs_interpreter = pytest.mark.skipif(
    not INTERPRETED,
    reason="run under TRITON_INTERPRET=1 by test_kernel_under_triton_interpreter",
)
parent_only = pytest.mark.skipif(
    INTERPRETED, reason="needs Triton imported without its interpreter"
)

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)

#: Tolerance relative to the largest entry: the products ``G[t] @ U`` are
#: summed in another order than torch's, which moves the last bits.
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@parent_only
def test_kernel_under_triton_interpreter(request):
    # This file again, in a fresh interpreter with TRITON_INTERPRET=1 set
    # before Triton's import: there the needs_interpreter tests run.
    import triton

    version = tuple(int(part) for part in triton.__version__.split(".")[:2])
    if version < (3, 7):
        pytest.skip("Triton < 3.7's interpreter cannot loop over a runtime integer")
    env = dict(os.environ, TRITON_INTERPRET="1", SKPART_TRITON_CHILD="1")
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"]
    markexpr = request.config.getoption("markexpr")
    if markexpr:
        command += ["-m", markexpr]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        cwd=request.config.rootpath,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"\d+ passed", output), output


def problem(k, n, dtype, seed=0, zero_diagonal=()):
    """An NMF codes problem: ``G = H H^T + l2``, ``B = H X^T - l1``, with
    ``U`` a non-negative start holding zeros (both branches of the projected
    gradient) and the components in ``zero_diagonal`` without atom (zero
    rows and columns of ``G``)."""
    gen = torch.Generator().manual_seed(seed)
    H = torch.rand(k, 2 * k + 8, generator=gen, dtype=torch.float64)
    H[list(zero_diagonal)] = 0
    X = torch.rand(n, 2 * k + 8, generator=gen, dtype=torch.float64)
    G = H @ H.T
    G.diagonal().add_(torch.where(G.diagonal() > 0, 0.05, 0.0))
    # The L1 term makes some B negative: their codes are clamped to zero.
    Bt = H @ X.T - 0.3 * (H @ X.T).mean()
    U0 = torch.rand(k, n, generator=gen, dtype=torch.float64)
    U0[U0 < 0.3] = 0
    return G.to(dtype), Bt.to(dtype), U0.to(dtype)


def assert_close(actual, expected, dtype):
    scale = expected.abs().max().item()
    torch.testing.assert_close(
        actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale
    )


def run_both(G, Bt, U0, n_sweeps, order, want_violation):
    U_ref, U_tri = U0.clone(), U0.clone()
    v_ref = hals_sweeps(U_ref, G, Bt, n_sweeps, order, want_violation)
    v_tri = hals_sweeps_triton(U_tri, G, Bt, n_sweeps, order, want_violation)
    return U_ref, v_ref, U_tri, v_tri


@pytest.mark.parametrize(
    "k, n, dtype, n_sweeps, want_violation, shuffled",
    [
        (1, 5, torch.float64, 2, True, False),
        (5, 37, torch.float32, 3, True, True),
        (5, 37, torch.float64, 3, False, True),
        (20, 150, torch.float32, 2, True, False),
        (20, 150, torch.float64, 2, True, True),
        (100, 40, torch.float32, 1, True, True),
        (100, 20, torch.float64, 2, False, False),
    ],
)
@needs_interpreter
def test_matches_torch_sweeps(k, n, dtype, n_sweeps, want_violation, shuffled):
    # n is never a multiple of the tile's columns (the last tile is masked)
    # and spans one to two programs; k = 5, 20, 100 pad to 8, 32, 128 rows.
    G, Bt, U0 = problem(k, n, dtype)
    order = torch.randperm(k).tolist() if shuffled else list(range(k))
    U_ref, v_ref, U_tri, v_tri = run_both(G, Bt, U0, n_sweeps, order, want_violation)
    assert (U_tri >= 0).all()
    assert not torch.equal(U_tri, U0)
    assert_close(U_tri, U_ref, dtype)
    if want_violation:
        assert v_tri.shape == (n,) and v_tri.dtype == dtype
        assert (v_tri > 0).any()
        assert_close(v_tri, v_ref, dtype)
    else:
        assert v_tri is None


@needs_interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_diagonal_components_are_left_alone(dtype):
    k, n = 6, 21
    G, Bt, U0 = problem(k, n, dtype, seed=1, zero_diagonal=(1, 4))
    assert (G.diagonal()[[1, 4]] == 0).all()
    U_ref, v_ref, U_tri, v_tri = run_both(G, Bt, U0, 2, [4, 0, 1, 5, 2, 3], True)
    assert torch.equal(U_tri[[1, 4]], U0[[1, 4]])
    assert_close(U_tri, U_ref, dtype)
    # Their projected gradients still count in the violation, as in torch's.
    assert_close(v_tri, v_ref, dtype)


@needs_interpreter
def test_order_as_tensor_repeats_and_subsets():
    k, n = 7, 19
    G, Bt, U0 = problem(k, n, torch.float64, seed=2)
    order = [3, 0, 3, 6, 2]  # a component twice, two never
    U_ref, v_ref, U_list, v_list = run_both(G, Bt, U0, 2, order, True)
    assert_close(U_list, U_ref, torch.float64)
    assert_close(v_list, v_ref, torch.float64)
    assert torch.equal(U_list[[1, 4, 5]], U0[[1, 4, 5]])
    for dtype in (torch.int32, torch.int64):
        U_tensor = U0.clone()
        v_tensor = hals_sweeps_triton(
            U_tensor, G, Bt, 2, torch.tensor(order, dtype=dtype), True
        )
        assert torch.equal(U_tensor, U_list)
        assert torch.equal(v_tensor, v_list)


@needs_interpreter
def test_strided_views_are_updated_in_place():
    # Ut a block of columns of a larger factor, Bt a transposed (n, k)
    # matrix and G a transposed copy: the kernel follows the strides and
    # writes only inside the view.
    k, n = 6, 23
    G, Bt, U0 = problem(k, n, torch.float64, seed=3)
    parent = torch.rand(k, n + 9, dtype=torch.float64)
    parent[:, 4 : 4 + n] = U0
    before = parent.clone()
    view = parent[:, 4 : 4 + n]
    assert not view.is_contiguous()
    violation = hals_sweeps_triton(
        view, G.T.contiguous().T, Bt.T.contiguous().T, 2, list(range(k)), True
    )
    U_ref = U0.clone()
    v_ref = hals_sweeps(U_ref, G, Bt, 2, list(range(k)), True)
    assert_close(parent[:, 4 : 4 + n], U_ref, torch.float64)
    assert_close(violation, v_ref, torch.float64)
    assert torch.equal(parent[:, :4], before[:, :4])
    assert torch.equal(parent[:, 4 + n :], before[:, 4 + n :])


@needs_interpreter
def test_nothing_to_do():
    G, Bt, U0 = problem(4, 9, torch.float32)
    U = U0.clone()
    assert torch.equal(hals_sweeps_triton(U, G, Bt, 0, [0, 1, 2, 3], True), 0 * U0[0])
    assert hals_sweeps_triton(U, G, Bt, 3, [], False) is None
    assert torch.equal(U, U0)
    empty = torch.zeros(4, 0)
    assert hals_sweeps_triton(empty, G, Bt[:, :0], 3, [0, 1], True).shape == (0,)


def test_rejects_what_it_cannot_do():
    G, Bt, U0 = problem(3, 4, torch.float64)
    with pytest.raises(ValueError, match="out of range"):
        hals_sweeps_triton(U0, G, Bt, 1, [0, 3], False)
    big = torch.zeros(MAX_K + 1, 2)
    with pytest.raises(ValueError, match="at most"):
        hals_sweeps_triton(big, torch.eye(MAX_K + 1), big, 1, [0], False)


@needs_interpreter
@pytest.mark.parametrize("shuffle", [pytest.param(False, marks=pytest.mark.slow), True])
def test_drop_in_for_the_estimators_sweeps(monkeypatch, shuffle):
    # SparseNMF's fit and transform with every HALS sweep done by the kernel
    # (as the dispatch in hals_sweeps will do on CUDA) give the torch sweeps'
    # factors: the kernel takes the arguments the solver really passes.
    from skpart import SparseNMF
    from skpart._core import _updates

    gen = torch.Generator().manual_seed(10)
    X = torch.rand(40, 12, generator=gen, dtype=torch.float64).numpy()
    params = dict(
        n_components=4,
        init="nndsvda",
        max_iter=15,
        tol=0,
        alpha_W=0.01,
        l1_ratio=0.5,
        shuffle=shuffle,
        random_state=0,
    )
    reference = SparseNMF(**params)
    W_ref = reference.fit_transform(X)
    calls = []

    def kernel_sweeps(*args):
        calls.append(args[0].shape)
        return hals_sweeps_triton(*args)

    monkeypatch.setattr(_updates, "hals_sweeps", kernel_sweeps)
    model = SparseNMF(**params)
    W = model.fit_transform(X)
    assert (4, 40) in calls and (4, 12) in calls
    scale = max(abs(W_ref).max(), abs(reference.components_).max())
    assert abs(W - W_ref).max() <= 1e-10 * scale
    assert abs(model.components_ - reference.components_).max() <= 1e-10 * scale
    assert abs(model.transform(X[:7]) - reference.transform(X[:7])).max() <= (
        1e-10 * scale
    )


@needs_interpreter
def test_torch_side_is_constant_and_sync_free():
    # Around the one launch, a call dispatches the same few torch ops (the
    # violation's buffer, 1 / diag(G)) whatever k and the number of sweeps,
    # and none that waits for the device: the sweeps are all in the kernel.
    from skpart.utils._dispatch_probe import FREE_OPS, DispatchProbe

    # The interpreter stages the arguments through host copies of their
    # storages, which a GPU launch does not do.
    staging = {"aten.set_", "aten.new_empty", "aten.copy_"}
    counts = []
    for k, n_sweeps in [(3, 1), (12, 3)]:
        G, Bt, U0 = problem(k, 10, torch.float32, seed=9)
        order = torch.randperm(k)
        with DispatchProbe() as probe:
            hals_sweeps_triton(U0, G, Bt, n_sweeps, order, True)
        assert probe.syncs == []
        ops = {op: n for op, n in probe.ops.items() if op not in FREE_OPS | staging}
        counts.append(sum(ops.values()))
    assert counts[0] == counts[1] <= 8, ops


@parent_only
def test_not_available_on_cpu(monkeypatch):
    U = torch.zeros(5, 3)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not available(U)
    # Set after Triton's import, the variable cannot make the kernel run.
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not available(U)


@needs_interpreter
def test_available_under_interpreter():
    U = torch.zeros(5, 3)
    assert available(U)
    assert available(U.double())
    assert available(torch.zeros(MAX_K, 3))
    assert not available(U.half())
    assert not available(torch.zeros(MAX_K + 1, 3))
    assert not available(torch.zeros(5))


@parent_only
def test_available_on_cpu_does_not_import_triton():
    # Importing skpart, the module, and asking about a CPU tensor leave
    # Triton unimported (it takes seconds to import).
    code = (
        "import sys, torch, skpart\n"
        "from skpart._core._triton_hals import available\n"
        "assert not available(torch.zeros(3, 4))\n"
        "assert 'triton' not in sys.modules, 'triton imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@parent_only
@pytest.mark.parametrize("k", [1, 5, 20, 100, 256, MAX_K])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tile_shape(k, dtype):
    k_pad, block_n, num_warps = tile_shape(k, dtype)
    assert k <= k_pad < 2 * max(k, 1) and k_pad & (k_pad - 1) == 0
    assert block_n & (block_n - 1) == 0 and 16 <= block_n <= 128
    assert num_warps in (4, 8, 16)
    # At most 16 float32 or float64 numbers of the tile per thread.
    assert k_pad * block_n <= 16 * 32 * num_warps


@pytest.mark.slow
@needs_interpreter
@pytest.mark.parametrize(
    "k, n, dtype, n_sweeps",
    [(128, 50, torch.float64, 2), (256, 17, torch.float32, 1)],
)
def test_matches_torch_sweeps_larger(k, n, dtype, n_sweeps):
    # Full tiles of 128 and 256 components (no padded row) over 2 programs
    # or more, with a component without atom.
    G, Bt, U0 = problem(k, n, dtype, seed=4, zero_diagonal=(7,))
    order = torch.randperm(k, generator=torch.Generator().manual_seed(5)).tolist()
    U_ref, v_ref, U_tri, v_tri = run_both(G, Bt, U0, n_sweeps, order, True)
    assert_close(U_tri, U_ref, dtype)
    assert_close(v_tri, v_ref, dtype)


@parent_only
@pytest.mark.parametrize(
    "k, dtype, want_violation",
    [(100, torch.float32, True), (256, torch.float64, False)],
)
def test_compiles_for_a_gpu(monkeypatch, k, dtype, want_violation):
    # The interpreter runs the kernel as Python; the compiler is stricter
    # (types, constexprs, loop-carried values). Compile it for sm_90 as a
    # launch would, without a device.
    compiler = pytest.importorskip("triton.compiler")
    backends = pytest.importorskip("triton.backends.compiler")
    import triton

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    kernel = _triton_hals._build(False)
    k_pad, block_n, num_warps = tile_shape(k, dtype)
    ty = {torch.float32: "fp32", torch.float64: "fp64"}[dtype]
    signature = dict.fromkeys(
        ["U_ptr", "G_ptr", "B_ptr", "inv_ptr", "viol_ptr"], f"*{ty}"
    )
    signature["order_ptr"] = "*i64"
    signature.update(dict.fromkeys(kernel.arg_names[6:16], "i32"))
    constexprs = {"K_PAD": k_pad, "BLOCK_N": block_n, "WANT_VIOLATION": want_violation}
    signature.update(dict.fromkeys(constexprs, "constexpr"))
    signature = {name: signature[name] for name in kernel.arg_names}
    source = compiler.ASTSource(
        fn=kernel,
        signature=signature,
        constexprs={(kernel.arg_names.index(a),): v for a, v in constexprs.items()},
    )
    compiled = triton.compile(
        source,
        target=backends.GPUTarget("cuda", 90, 32),
        options={"num_warps": num_warps, "enable_fp_fusion": True},
    )
    assert compiled.asm["cubin"]
    # The update is one fused multiply-add in the tile's precision.
    assert f"fma.rn.f{ty[2:]}" in compiled.asm["ptx"]


@parent_only
@needs_cuda
@pytest.mark.parametrize(
    "k, dtype",
    [
        (5, torch.float32),
        (100, torch.float32),
        (100, torch.float64),
        (256, torch.float32),
    ],
)
def test_matches_torch_sweeps_on_cuda(k, dtype):
    n = 1003
    G, Bt, U0 = problem(k, n, dtype, seed=6, zero_diagonal=(1,))
    order = torch.randperm(k, generator=torch.Generator().manual_seed(7))
    U_ref = U0.clone()
    v_ref = hals_sweeps(U_ref, G, Bt, 3, order.tolist(), True)
    cuda = torch.device("cuda")
    U = U0.to(cuda)
    assert available(U)
    v = hals_sweeps_triton(U, G.to(cuda), Bt.to(cuda), 3, order.to(cuda), True)
    assert_close(U.cpu(), U_ref, dtype)
    assert_close(v.cpu(), v_ref, dtype)


@parent_only
@needs_cuda
@pytest.mark.parametrize("natural", [False, True])
def test_replays_in_a_cuda_graph(natural):
    # Once compiled, a call launches one kernel and never waits for the
    # device: it can be captured, and the replay gives the same numbers. The
    # order is a device tensor, or the natural order as a list (its device
    # copy is made by the first call and reused).
    cuda = torch.device("cuda")
    G, Bt, U0 = (x.to(cuda) for x in problem(20, 500, torch.float32, seed=8))
    order = list(range(20)) if natural else torch.randperm(20, device=cuda)
    U_eager = U0.clone()
    v_eager = hals_sweeps_triton(U_eager, G, Bt, 2, order, True)
    U = U0.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        v = hals_sweeps_triton(U, G, Bt, 2, order, True)
    U.copy_(U0)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(U, U_eager)
    assert torch.equal(v, v_eager)
