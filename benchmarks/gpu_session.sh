#!/usr/bin/env bash
# Everything a GPU session checks, in one call of the device tool (about 5
# minutes): the CUDA tests, then bench_gpu.py, whose table is written to
# $OUT (the device tool's output folder) and benchmarks/results/bench_gpu.md.
#
#   run: bash benchmarks/gpu_session.sh            (timeout_s=540)
#
# The GPU machine's python3 has torch, triton, scikit-learn and SciPy but may
# lack pytest: carry wheels in .gpu_wheels/ (pip download pytest hypothesis
# -d .gpu_wheels on this machine; the folder is git-ignored) and pass
# carry=[".gpu_wheels"].
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export SKPART_DATA="${SKPART_DATA:-$(cd .. && pwd)/shared/data}"
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
python3 -c "import pytest" 2>/dev/null ||
    python3 -m pip install -q --no-index --find-links .gpu_wheels pytest hypothesis
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 240 python3 -m pytest -q -rs -p no:cacheprovider \
    tests/test_gpu.py tests/test_gpu_autoencoder.py tests/test_triton_hals.py \
    tests/test_sync_free_nmf.py tests/test_sync_free_constrained.py \
    tests/test_sync_free_autoencoder.py 2>&1 | tee "$OUT/gpu_tests.txt"
SKPART_BENCH_OUT="$OUT" timeout 300 python3 benchmarks/bench_gpu.py 2>&1 |
    tee "$OUT/bench_gpu.txt"
cp "$OUT/bench_gpu.md" benchmarks/results/bench_gpu.md 2>/dev/null || true
