#!/usr/bin/env bash
# Fetches TensorRT's public headers (include/ of github.com/NVIDIA/TensorRT at a tag or branch)
# into plugins/third_party/tensorrt, enough to compile libunetkit_plugins.so where TensorRT is
# not installed. The folder is git-ignored: NVIDIA's headers are never committed here.
#   plugins/fetch_trt_headers.sh [REF]        REF: v11.1 (default), release/10.16, ...
#   TENSORRT_GIT=/path/to/TensorRT/clone plugins/fetch_trt_headers.sh   (offline mirror)
set -euo pipefail
ref=${1:-v11.1}
source=${TENSORRT_GIT:-https://github.com/NVIDIA/TensorRT.git}
dest="$(cd "$(dirname "$0")" && pwd)/third_party/tensorrt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! git clone --quiet --depth 1 --branch "$ref" --filter=blob:none --no-checkout "$source" "$work/trt"; then
  echo "error: cannot clone $source at $ref; check the network or pass TENSORRT_GIT=<local clone>" >&2
  exit 2
fi
git -C "$work/trt" checkout --quiet HEAD -- include
mkdir -p "$work/out"
cp -r "$work/trt/include" "$work/out/include"
echo "$ref $(git -C "$work/trt" rev-parse HEAD)" > "$work/out/SOURCE"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work/out" "$dest"
grep -hE '^#define TRT_(MAJOR|MINOR|PATCH)_ENTERPRISE' "$dest/include/NvInferVersion.h" \
  | awk '{v = v (v ? "." : "") $3} END {print "TensorRT " v " headers in '"$dest"' (" "'"$ref"'" ")"}'
