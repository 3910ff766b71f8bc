// The harness's cases and its CPU reference: which shapes, scales, types and formats are run,
// how each format lays a tensor out in memory, and the element-by-element comparison.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unetkit::harness
{

// A type and format that supportsFormatCombination accepts for the input, with the output's.
struct Combination
{
    nvinfer1::DataType inType;
    nvinfer1::TensorFormat inFormat;
    nvinfer1::DataType outType;
    nvinfer1::TensorFormat outFormat;
};

struct Case
{
    Combination combination;
    int64_t n, c, h, w;
    int32_t scaleH, scaleW;
};

// Every accepted combination over the shapes and scales below:
//  - shapes with batch 1 and > 1, odd heights and widths, channel counts that are and are not
//    multiples of 8, widths that give the kernels' 16-byte vector path and widths that do not;
//  - every scale pair from 1x1 to 8x8 (each kernel path: copy, replicate, stretch by 2 and 4,
//    gather for other factors), and the attribute range's ends 1024x1, 1x1024, 1024x1024 on
//    the small shapes.
std::vector<Case> makeCases(std::vector<Combination> const& combinations);

char const* typeName(nvinfer1::DataType type);
char const* formatName(nvinfer1::TensorFormat format);
// "fp16 kHWC8 in/out, NCHW 3x13x7x9, scale 2x3"
std::string describe(Case const& testCase);

// The memory image of a tensor in one format.
struct Layout
{
    nvinfer1::TensorFormat format;
    int64_t n, c, h, w;
    int64_t storedChannels() const noexcept; // kHWC8 pads C to a multiple of 8
    int64_t elements() const noexcept;
    int64_t offset(int64_t in, int64_t ic, int64_t iy, int64_t ix) const noexcept;
};

Layout inputLayout(Case const& testCase);
Layout outputLayout(Case const& testCase);
size_t elementBytes(nvinfer1::DataType type);

// Random finite values (no NaN or Inf, so that an error is a number), as raw element bits.
std::vector<uint8_t> randomTensor(nvinfer1::DataType type, int64_t elements, uint32_t seed);

struct Comparison
{
    int64_t compared{0};
    int64_t mismatches{0};
    double maxAbsError{0.0};
    std::string firstMismatch; // "element [n=0, c=3, y=5, x=2] (offset 97): expected 1.5, got -0"
};

// out[n, c, y, x] == in[n, c, y / scaleH, x / scaleW] for every stored element, padding
// channels of kHWC8 included (the plugin copies them along).
Comparison compare(Case const& testCase, std::vector<uint8_t> const& input, std::vector<uint8_t> const& output);

} // namespace unetkit::harness
