#!/usr/bin/env bash
# On a CUDA machine (no TensorRT needed): builds libunetkit_plugins.so and its GPU harness with
# CMake and nvcc against TensorRT's headers, runs the harness, checks that a wrong element is
# caught, and runs the harness again under compute-sanitizer memcheck (with leak check),
# racecheck and initcheck.
#   plugins/tests/run_harness.sh OUT_DIR        (make plugins-harness)
# Headers: $TENSORRT_HEADERS, else what plugins/find_trt_headers.sh finds. CUDA_ARCHS: the
# architectures to build (default: the GPU's own). Writes to OUT_DIR: env.txt, build.log,
# harness.log, summary.json, cases.tsv, inject-mismatch.log, memcheck.log, racecheck.log,
# initcheck.log. Exit status 0 only when every step passed.
set -euo pipefail
out=${1:?usage: run_harness.sh OUT_DIR}
plugins=$(cd "$(dirname "$0")/.." && pwd)
headers=${TENSORRT_HEADERS:-$("$plugins/find_trt_headers.sh" 11)}
if [[ -z $headers ]]; then
  echo "error: no TensorRT 11 headers; set TENSORRT_HEADERS=<folder with NvInferRuntime.h> or run make trt-headers" >&2
  exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
  nvidia-smi --version
  nvcc --version | tail -2
  cmake --version | head -1
  compute-sanitizer --version | tail -1
  echo "TensorRT headers: $(grep -hE '^#define TRT_(MAJOR|MINOR|PATCH)_ENTERPRISE' "$headers/NvInferVersion.h" \
    | awk '{v = v (v ? "." : "") $3} END {print v}')"
} > "$out/env.txt" 2>&1 || true
cat "$out/env.txt"

cmake -S "$plugins" -B "$build" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-native}" \
  -DTENSORRT_HEADERS="$headers" > "$out/build.log" 2>&1
cmake --build "$build" -j "$(nproc)" --target unetkit_plugin_gpu_harness >> "$out/build.log" 2>&1
harness=("$build/unetkit_plugin_gpu_harness" --plugin "$build/libunetkit_plugins.so")

status=0
"${harness[@]}" --out "$out" > "$out/harness.log" 2>&1 || status=1
tail -5 "$out/harness.log"

# The comparison itself: one flipped output element must fail the run and be named.
if "${harness[@]}" --inject-mismatch > "$out/inject-mismatch.log" 2>&1; then
  echo "FAIL: --inject-mismatch passed; the comparison misses a wrong element" | tee -a "$out/inject-mismatch.log"
  status=1
elif ! grep -q '^FAIL .*first: element' "$out/inject-mismatch.log"; then
  echo "FAIL: --inject-mismatch failed without naming the case and element" | tee -a "$out/inject-mismatch.log"
  status=1
fi
grep -m1 '^FAIL' "$out/inject-mismatch.log" || true

for tool in memcheck racecheck initcheck; do
  extra=()
  [[ $tool == memcheck ]] && extra=(--leak-check full)
  timeout "${SANITIZER_TIMEOUT_S:-300}" compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 3 "${harness[@]}" \
    > "$out/$tool.log" 2>&1 || status=1
  echo "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/$tool.log" | tail -1)"
done
exit $status
