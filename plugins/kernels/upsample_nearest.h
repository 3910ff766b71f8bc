// Nearest-neighbour upsampling by integer factors: the CUDA kernels behind the
// UnetkitUpsampleNearest TensorRT plugin, callable on their own through a plain C entry point
// (the GPU tests load it with ctypes).
//
// out[n, c, oh, ow] = in[n, c, oh / scale_h, ow / scale_w], which is ONNX Resize with
// mode=nearest, coordinate_transformation_mode=asymmetric, nearest_mode=floor and integer scales,
// and Keras UpSampling2D(interpolation="nearest").
#pragma once

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

// Element types. The kernels copy bits, so fp16 covers any 2-byte type.
enum UnetkitDtype
{
    UNETKIT_DTYPE_FP32 = 0,
    UNETKIT_DTYPE_FP16 = 1
};

// Memory layouts.
//   UNETKIT_LAYOUT_NCHW: [n][c][h][w], w contiguous (TensorRT kLINEAR).
//   UNETKIT_LAYOUT_NHWC: [n][h][w][c], c contiguous. For TensorRT's kHWC8 pass the channel
//     count rounded up to a multiple of 8: the padding channels are copied like the others.
enum UnetkitLayout
{
    UNETKIT_LAYOUT_NCHW = 0,
    UNETKIT_LAYOUT_NHWC = 1
};

// Upsamples `in` into `out` (both device pointers, not overlapping) on `stream`.
// Output shape: n, c, h * scale_h, w * scale_w in the same layout as the input.
// Returns cudaSuccess, cudaErrorInvalidValue for a bad argument (unknown dtype or layout,
// negative size, scale < 1, size overflow), or the launch error.
int unetkit_upsample_nearest(void const* in, void* out, int dtype, int layout, int n, int c, int h,
    int w, int scale_h, int scale_w, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
