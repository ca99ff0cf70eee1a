#!/bin/sh
# The GPU checks and the GPU benchmark in one go, as run on a lent GPU machine:
#
#     sh benchmarks/device_run.sh OUT_DIR
#
# Runs from the repository root with the machine's own python3 (CuPy, PyTorch, numba,
# pytest, hypothesis, rich and matplotlib installed; no TensorFlow there), scratchopt from
# the checkout. Writes OUT_DIR/env.txt (nvidia-smi and versions), pytest_gpu.txt (the
# tests marked gpu), gpu_vs_cpu.json (benchmarks/gpu_vs_cpu.py), gpu_step_overhead.txt
# (benchmarks/gpu_step_overhead.py) and bench/ (scratchopt bench
# on the GPU: results.json, table.txt, plots). Each stage has its own time limit, so a slow
# one cannot take the others' results with it. BENCH_SKIP=1 runs the checks alone.
set -u
OUT=${1:?usage: sh benchmarks/device_run.sh OUT_DIR}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HYPOTHESIS_PROFILE=ci
PY=${PYTHON:-python3}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  $PY -c "import sys, numpy, cupy, torch; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__, 'torch', torch.__version__, 'cuda', cupy.cuda.runtime.runtimeGetVersion())"
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
echo "== pytest -m gpu"
timeout 200 $PY -m pytest parity_tests/test_gpu.py parity_tests/test_fused_gpu.py \
  -m gpu -q -p no:cacheprovider -p no:randomly > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest rc $?"; tail -n 25 "$OUT/pytest_gpu.txt"
echo "== gpu_vs_cpu"
timeout 90 $PY benchmarks/gpu_vs_cpu.py --out "$OUT/gpu_vs_cpu.json"
echo "gpu_vs_cpu rc $?"
echo "== gpu_step_overhead"
timeout 90 $PY benchmarks/gpu_step_overhead.py > "$OUT/gpu_step_overhead.txt" 2>&1
echo "gpu_step_overhead rc $?"; cat "$OUT/gpu_step_overhead.txt"
[ -n "${BENCH_SKIP:-}" ] && exit 0
echo "== scratchopt bench --devices gpu"
timeout "${BENCH_TIMEOUT:-330}" $PY -m scratchopt bench --devices gpu --repeats "${BENCH_REPEATS:-30}" \
  --out "$OUT/bench" ${BENCH_ARGS:-} 2>&1 | tail -n 60
echo "bench rc $?"
