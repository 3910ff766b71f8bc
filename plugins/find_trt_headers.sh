#!/usr/bin/env bash
# Prints the include folder of TensorRT's public headers for one major version (default 11), or
# nothing when there are none. Used by the Makefile (TENSORRT_HEADERS) and the tests, so that
# `make plugins`, `make test` and CI's clean clone find the same headers. Looks, in this order:
#   1. $TENSORRT_HEADERS, when it holds that major's NvInferRuntime.h;
#   2. the `make trt-headers` cache, $TRT_HEADERS_CACHE/<major>.*/include (newest first;
#      default ~/.cache/unetkit/tensorrt);
#   3. shared/tensorrt/<major>.*/include beside the checkout (../shared from the repository
#      root, where CI's clean clone has a copy of shared/), then beside each folder above it.
#   plugins/find_trt_headers.sh [MAJOR]
set -euo pipefail
major=${1:-11}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TRT_HEADERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unetkit/tensorrt}

holds_major() {
  local version_header=$1/NvInferVersion.h
  [[ -f $1/NvInferRuntime.h && -f $version_header ]] &&
    grep -qE "^#define TRT_MAJOR_ENTERPRISE +$major\b" "$version_header"
}

# <folder>/<major>.*/include, newest minor first.
newest_in() {
  local folder=$1 candidate
  [[ -d $folder ]] || return 1
  while read -r candidate; do
    if holds_major "$folder/$candidate/include"; then
      echo "$folder/$candidate/include"
      return 0
    fi
  done < <(find "$folder" -mindepth 1 -maxdepth 1 -name "$major.*" -printf '%f\n' | sort -t. -k2,2nr)
  return 1
}

if [[ -n ${TENSORRT_HEADERS:-} ]] && holds_major "$TENSORRT_HEADERS"; then
  echo "$TENSORRT_HEADERS"
  exit 0
fi
newest_in "$cache" && exit 0
folder=$root
while [[ $folder != / ]]; do
  folder=$(dirname "$folder")
  newest_in "$folder/shared/tensorrt" && exit 0
done
exit 0
