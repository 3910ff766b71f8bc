// Nearest-neighbour upsampling kernels. Memory-bound: the input is read once and every output
// byte written once, with 16-byte stores laid side by side across each warp so that every store
// instruction fills whole 32-byte sectors (a first version that stored two 16-byte vectors per
// thread, 32 bytes apart across the warp, reached only ~74% of copy bandwidth on an H100).
//
// Three kernels cover every case:
//  - stretchRows: NCHW, scale_w 2 or 4. Each thread loads the 16/scale_w input bytes behind one
//    16-byte output vector and stores that vector on scale_h output rows.
//  - gatherRows: NCHW, any other scale_w > 1. Each thread assembles one 16-byte output vector
//    from element loads (served by L1: neighbouring threads read the same input bytes).
//  - replicateUnits: a tensor seen as [rows][width][units]; each unit (a 16-byte vector or one
//    element) is stored at scale_h * scale_w output positions. NHWC uses it with units along C;
//    NCHW uses it with one unit per pixel when scale_w == 1, and as the scalar fallback when
//    output rows are not whole 16-byte vectors or the buffers are not 16-byte aligned.
#include "upsample_nearest.h"

#include <cstdint>
#include <initializer_list>
#include <limits>

namespace
{

constexpr int kThreadsPerBlock = 256;
constexpr int kVectorBytes = 16;
using Vector = uint4;
static_assert(sizeof(Vector) == kVectorBytes, "uint4 must be 16 bytes");

template <int kBytes>
struct UnsignedOfSize;
template <>
struct UnsignedOfSize<4>
{
    using Type = uint32_t;
};
template <>
struct UnsignedOfSize<8>
{
    using Type = uint2;
};

// In NCHW viewed as [n*c*h][w], input row r becomes output rows r*scale_h ... r*scale_h+scale_h-1:
// no division by h is needed.
template <typename Element, int kScaleW, typename Index>
__global__ void __launch_bounds__(kThreadsPerBlock) stretchRows(void const* __restrict__ in,
    Vector* __restrict__ out, Index vectorCount, Index outVectorsPerRow, int scaleH)
{
    constexpr int kElementsPerVector = kVectorBytes / sizeof(Element);
    using Part = typename UnsignedOfSize<kVectorBytes / kScaleW>::Type;
    Index const index = static_cast<Index>(blockIdx.x) * kThreadsPerBlock + threadIdx.x;
    if (index >= vectorCount)
    {
        return;
    }
    Index const row = index / outVectorsPerRow;
    Index const column = index - row * outVectorsPerRow;

    // Input rows hold exactly outVectorsPerRow parts, so part `index` is the one behind output
    // vector `index`.
    Part const loaded = __ldg(static_cast<Part const*>(in) + index);
    Element const* source = reinterpret_cast<Element const*>(&loaded);
    Vector stretched;
    Element* target = reinterpret_cast<Element*>(&stretched);
#pragma unroll
    for (int k = 0; k < kElementsPerVector; ++k)
    {
        target[k] = source[k / kScaleW];
    }

    Vector* destination = out + row * scaleH * outVectorsPerRow + column;
    for (int dy = 0; dy < scaleH; ++dy)
    {
        *destination = stretched;
        destination += outVectorsPerRow;
    }
}

template <typename Element, typename Index>
__global__ void __launch_bounds__(kThreadsPerBlock) gatherRows(Element const* __restrict__ in,
    Vector* __restrict__ out, Index vectorCount, Index outVectorsPerRow, Index width, int scaleH, int scaleW)
{
    constexpr int kElementsPerVector = kVectorBytes / sizeof(Element);
    Index const index = static_cast<Index>(blockIdx.x) * kThreadsPerBlock + threadIdx.x;
    if (index >= vectorCount)
    {
        return;
    }
    Index const row = index / outVectorsPerRow;
    Index const column = index - row * outVectorsPerRow;

    Index const firstOut = column * kElementsPerVector;
    Element const* source = in + row * width + firstOut / scaleW;
    int phase = static_cast<int>(firstOut % scaleW);
    Vector gathered;
    Element* target = reinterpret_cast<Element*>(&gathered);
#pragma unroll
    for (int k = 0; k < kElementsPerVector; ++k)
    {
        target[k] = __ldg(source);
        if (++phase == scaleW)
        {
            phase = 0;
            ++source;
        }
    }

    Vector* destination = out + row * scaleH * outVectorsPerRow + column;
    for (int dy = 0; dy < scaleH; ++dy)
    {
        *destination = gathered;
        destination += outVectorsPerRow;
    }
}

template <typename Unit, typename Index>
__global__ void __launch_bounds__(kThreadsPerBlock) replicateUnits(Unit const* __restrict__ in,
    Unit* __restrict__ out, Index unitCount, Index width, Index unitsPerPixel, int scaleH, int scaleW)
{
    Index const index = static_cast<Index>(blockIdx.x) * kThreadsPerBlock + threadIdx.x;
    if (index >= unitCount)
    {
        return;
    }
    Index const pixel = index / unitsPerPixel;
    Index const unit = index - pixel * unitsPerPixel;
    Index const row = pixel / width;
    Index const x = pixel - row * width;

    Unit const value = in[index];
    Index const outRowUnits = width * scaleW * unitsPerPixel;
    Unit* destination = out + row * scaleH * outRowUnits + x * scaleW * unitsPerPixel + unit;
    for (int dy = 0; dy < scaleH; ++dy)
    {
        for (int dx = 0; dx < scaleW; ++dx)
        {
            destination[dx * unitsPerPixel] = value;
        }
        destination += outRowUnits;
    }
}

unsigned int blocksFor(uint64_t work)
{
    return static_cast<unsigned int>((work + kThreadsPerBlock - 1) / kThreadsPerBlock);
}

template <typename Unit>
cudaError_t launchReplicate(void const* in, void* out, uint64_t rows, uint64_t width,
    uint64_t unitsPerPixel, int scaleH, int scaleW, bool narrowIndex, cudaStream_t stream)
{
    uint64_t const unitCount = rows * width * unitsPerPixel;
    auto const* source = static_cast<Unit const*>(in);
    auto* destination = static_cast<Unit*>(out);
    if (narrowIndex)
    {
        replicateUnits<Unit, uint32_t><<<blocksFor(unitCount), kThreadsPerBlock, 0, stream>>>(source,
            destination, static_cast<uint32_t>(unitCount), static_cast<uint32_t>(width),
            static_cast<uint32_t>(unitsPerPixel), scaleH, scaleW);
    }
    else
    {
        replicateUnits<Unit, uint64_t><<<blocksFor(unitCount), kThreadsPerBlock, 0, stream>>>(
            source, destination, unitCount, width, unitsPerPixel, scaleH, scaleW);
    }
    return cudaGetLastError();
}

template <typename Element, typename Index>
cudaError_t launchRows(void const* in, void* out, uint64_t rows, uint64_t width, int scaleH, int scaleW,
    cudaStream_t stream)
{
    constexpr uint64_t kElementsPerVector = kVectorBytes / sizeof(Element);
    uint64_t const outVectorsPerRow = width * scaleW / kElementsPerVector;
    uint64_t const vectorCount = rows * outVectorsPerRow;
    auto* destination = static_cast<Vector*>(out);
    unsigned int const blocks = blocksFor(vectorCount);
    switch (scaleW)
    {
    case 2:
        stretchRows<Element, 2, Index><<<blocks, kThreadsPerBlock, 0, stream>>>(
            in, destination, vectorCount, outVectorsPerRow, scaleH);
        break;
    case 4:
        stretchRows<Element, 4, Index><<<blocks, kThreadsPerBlock, 0, stream>>>(
            in, destination, vectorCount, outVectorsPerRow, scaleH);
        break;
    default:
        gatherRows<Element, Index><<<blocks, kThreadsPerBlock, 0, stream>>>(static_cast<Element const*>(in),
            destination, vectorCount, outVectorsPerRow, width, scaleH, scaleW);
    }
    return cudaGetLastError();
}

template <typename Element>
cudaError_t upsample(void const* in, void* out, int layout, uint64_t n, uint64_t c, uint64_t h,
    uint64_t w, int scaleH, int scaleW, bool narrowIndex, bool aligned, cudaStream_t stream)
{
    constexpr uint64_t kElementsPerVector = kVectorBytes / sizeof(Element);
    if (layout == UNETKIT_LAYOUT_NHWC)
    {
        if (aligned && c % kElementsPerVector == 0)
        {
            return launchReplicate<Vector>(
                in, out, n * h, w, c / kElementsPerVector, scaleH, scaleW, narrowIndex, stream);
        }
        return launchReplicate<Element>(in, out, n * h, w, c, scaleH, scaleW, narrowIndex, stream);
    }

    uint64_t const rows = n * c * h;
    bool const vectorRows = aligned && (w * scaleW) % kElementsPerVector == 0;
    if (vectorRows && scaleW == 1)
    {
        return launchReplicate<Vector>(
            in, out, rows, w / kElementsPerVector, 1, scaleH, 1, narrowIndex, stream);
    }
    if (vectorRows)
    {
        return narrowIndex ? launchRows<Element, uint32_t>(in, out, rows, w, scaleH, scaleW, stream)
                           : launchRows<Element, uint64_t>(in, out, rows, w, scaleH, scaleW, stream);
    }
    return launchReplicate<Element>(in, out, rows, w, 1, scaleH, scaleW, narrowIndex, stream);
}

bool isAligned(void const* pointer)
{
    return reinterpret_cast<uintptr_t>(pointer) % kVectorBytes == 0;
}

} // namespace

extern "C" int unetkit_upsample_nearest(void const* in, void* out, int dtype, int layout, int n, int c,
    int h, int w, int scale_h, int scale_w, cudaStream_t stream)
{
    bool const knownDtype = dtype == UNETKIT_DTYPE_FP32 || dtype == UNETKIT_DTYPE_FP16;
    bool const knownLayout = layout == UNETKIT_LAYOUT_NCHW || layout == UNETKIT_LAYOUT_NHWC;
    if (!knownDtype || !knownLayout || n < 0 || c < 0 || h < 0 || w < 0 || scale_h < 1 || scale_w < 1)
    {
        return cudaErrorInvalidValue;
    }
    uint64_t const elementBytes = dtype == UNETKIT_DTYPE_FP32 ? 4 : 2;
    // Output bytes, refused past 2^62 (beyond any device): every index product stays below 2^64.
    uint64_t outputBytes = elementBytes;
    for (int factor : {n, c, h, w, scale_h, scale_w})
    {
        if (__builtin_mul_overflow(outputBytes, static_cast<uint64_t>(factor), &outputBytes))
        {
            return cudaErrorInvalidValue;
        }
    }
    if (outputBytes == 0)
    {
        return cudaSuccess;
    }
    if (outputBytes > (uint64_t{1} << 62) || in == nullptr || out == nullptr)
    {
        return cudaErrorInvalidValue;
    }
    uint64_t const scale = static_cast<uint64_t>(scale_h) * scale_w;
    uint64_t const inputElements = outputBytes / elementBytes / scale;
    if (scale == 1)
    {
        return cudaMemcpyAsync(out, in, inputElements * elementBytes, cudaMemcpyDeviceToDevice, stream);
    }
    // Half the 32-bit range leaves room for the rounded-up grid in the thread index.
    bool const narrowIndex = inputElements * scale <= std::numeric_limits<uint32_t>::max() / 2;
    bool const aligned = isAligned(in) && isAligned(out);
    if (dtype == UNETKIT_DTYPE_FP32)
    {
        return upsample<uint32_t>(in, out, layout, n, c, h, w, scale_h, scale_w, narrowIndex, aligned, stream);
    }
    return upsample<uint16_t>(in, out, layout, n, c, h, w, scale_h, scale_w, narrowIndex, aligned, stream);
}
