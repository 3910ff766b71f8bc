#!/usr/bin/env bash
# Fetches TensorRT's public headers (include/ of github.com/NVIDIA/TensorRT at a tag or branch)
# into a cache outside the checkout, $TRT_HEADERS_CACHE/<major.minor>/include (default
# ~/.cache/unetkit/tensorrt), where CMake (TENSORRT_HEADERS) and the tests find them. Enough to
# compile libunetkit_plugins.so where TensorRT is not installed; NVIDIA's headers are never
# committed here.
#   plugins/fetch_trt_headers.sh [REF]        REF: v11.1 (default), v10.16, release/11.1, ...
#   TENSORRT_GIT=/path/to/TensorRT/clone plugins/fetch_trt_headers.sh   (offline mirror)
set -euo pipefail
ref=${1:-v11.1}
source=${TENSORRT_GIT:-https://github.com/NVIDIA/TensorRT.git}
cache=${TRT_HEADERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unetkit/tensorrt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! git clone --quiet --depth 1 --branch "$ref" --filter=blob:none --no-checkout "$source" "$work/trt"; then
  echo "error: cannot clone $source at $ref; check the network or pass TENSORRT_GIT=<local clone>" >&2
  exit 2
fi
git -C "$work/trt" checkout --quiet HEAD -- include
version_header="$work/trt/include/NvInferVersion.h"
major=$(sed -nE 's/^#define TRT_MAJOR_ENTERPRISE +([0-9]+).*/\1/p' "$version_header")
minor=$(sed -nE 's/^#define TRT_MINOR_ENTERPRISE +([0-9]+).*/\1/p' "$version_header")
if [[ -z "$major" || -z "$minor" ]]; then
  echo "error: $ref has no TRT_MAJOR/MINOR_ENTERPRISE in include/NvInferVersion.h; pass a TensorRT 10 or 11 ref" >&2
  exit 2
fi
dest="$cache/$major.$minor"
mkdir -p "$work/out"
cp -r "$work/trt/include" "$work/out/include"
echo "$ref $(git -C "$work/trt" rev-parse HEAD)" > "$work/out/SOURCE"
mkdir -p "$cache"
rm -rf "$dest"
mv "$work/out" "$dest"
grep -hE '^#define TRT_(MAJOR|MINOR|PATCH)_ENTERPRISE' "$dest/include/NvInferVersion.h" \
  | awk '{v = v (v ? "." : "") $3} END {print "TensorRT " v " headers in '"$dest/include"' (" "'"$ref"'" ")"}'
