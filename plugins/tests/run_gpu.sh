#!/usr/bin/env bash
# Builds the kernels and runs the GPU verification on a CUDA machine with PyTorch:
#   plugins/tests/run_gpu.sh OUT_DIR
# Writes env.txt, build.log, check.json, bench.json, bench.md and sanitizer.log to OUT_DIR.
set -euo pipefail
out=${1:?usage: run_gpu.sh OUT_DIR}
mkdir -p "$out"
plugins=$(cd "$(dirname "$0")/.." && pwd)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
python=${PYTHON:-python3}

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  nvcc --version | tail -2
  cmake --version | head -1
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

# The kernels are what is tested here (make plugins-harness tests the plugin).
cmake -S "$plugins" -B "$build" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" > "$out/build.log" 2>&1
cmake --build "$build" -j "$(nproc)" --target unetkit_kernels_shared >> "$out/build.log" 2>&1
lib="$build/libunetkit_kernels.so"

status=0
"$python" "$plugins/tests/gpu_verify.py" check --lib "$lib" --out "$out" || status=1
"$python" "$plugins/tests/gpu_verify.py" bench --lib "$lib" --out "$out" || status=1
if command -v compute-sanitizer > /dev/null; then
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$python" "$plugins/tests/gpu_verify.py" check --lib "$lib" --out "$build/sanitizer" \
    --random-cases 0 --no-large > "$out/sanitizer.log" 2>&1 || status=1
  tail -3 "$out/sanitizer.log"
fi
exit $status
