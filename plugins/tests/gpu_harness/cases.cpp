#include "cases.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <utility>

using nvinfer1::DataType;
using nvinfer1::TensorFormat;

namespace unetkit::harness
{
namespace
{

struct Shape
{
    int64_t n, c, h, w;
};

// N, C, H, W. Widths 4 and 8 give whole 16-byte output rows (the vector kernels) for some
// scales and types; 1, 5, 7, 9, 33 never do (the scalar fallback).
constexpr Shape kShapes[] = {
    {1, 1, 1, 1},
    {1, 3, 5, 7},
    {2, 8, 4, 4},
    {3, 13, 7, 9},
    {1, 16, 6, 8},
    {2, 24, 3, 5},
    {1, 32, 17, 33},
};
constexpr int32_t kMaxSmallScale = 8;
// The attribute's range ends (kMaxScale in the plugin), on shapes small enough to upsample
// a million times.
constexpr Shape kTinyShapes[] = {{1, 1, 1, 1}, {2, 3, 1, 2}};
constexpr int32_t kLargestScale = 1024;
constexpr int64_t kHwc8Multiple = 8;

float halfToFloat(uint16_t bits)
{
    uint32_t const sign = (bits >> 15) & 1U;
    int32_t const exponent = (bits >> 10) & 0x1F;
    uint32_t const mantissa = bits & 0x3FFU;
    float magnitude = 0.0F;
    if (exponent == 0)
    {
        magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    }
    else if (exponent == 0x1F)
    {
        magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
    }
    else
    {
        magnitude = std::ldexp(static_cast<float>(mantissa | 0x400U), exponent - 25);
    }
    return sign != 0U ? -magnitude : magnitude;
}

double valueAt(DataType type, std::vector<uint8_t> const& tensor, int64_t offset)
{
    if (type == DataType::kHALF)
    {
        uint16_t bits = 0;
        std::memcpy(&bits, tensor.data() + offset * 2, 2);
        return halfToFloat(bits);
    }
    float value = 0.0F;
    std::memcpy(&value, tensor.data() + offset * 4, 4);
    return value;
}

bool sameBits(std::vector<uint8_t> const& a, int64_t aOffset, std::vector<uint8_t> const& b, int64_t bOffset,
    size_t bytes)
{
    return std::memcmp(a.data() + aOffset * bytes, b.data() + bOffset * bytes, bytes) == 0;
}

} // namespace

std::vector<Case> makeCases(std::vector<Combination> const& combinations)
{
    std::vector<Case> cases;
    for (Combination const& combination : combinations)
    {
        for (Shape const& shape : kShapes)
        {
            for (int32_t scaleH = 1; scaleH <= kMaxSmallScale; ++scaleH)
            {
                for (int32_t scaleW = 1; scaleW <= kMaxSmallScale; ++scaleW)
                {
                    cases.push_back({combination, shape.n, shape.c, shape.h, shape.w, scaleH, scaleW});
                }
            }
        }
        for (Shape const& shape : kTinyShapes)
        {
            for (auto [scaleH, scaleW] : {std::pair{kLargestScale, 1}, std::pair{1, kLargestScale},
                     std::pair{kLargestScale, kLargestScale}})
            {
                cases.push_back({combination, shape.n, shape.c, shape.h, shape.w, scaleH, scaleW});
            }
        }
    }
    return cases;
}

char const* typeName(DataType type)
{
    switch (type)
    {
    case DataType::kFLOAT: return "fp32";
    case DataType::kHALF: return "fp16";
    case DataType::kINT8: return "int8";
    case DataType::kINT32: return "int32";
    case DataType::kBOOL: return "bool";
    case DataType::kUINT8: return "uint8";
    case DataType::kFP8: return "fp8";
    case DataType::kBF16: return "bf16";
    case DataType::kINT64: return "int64";
    case DataType::kINT4: return "int4";
    case DataType::kFP4: return "fp4";
    case DataType::kE8M0: return "e8m0";
    }
    return "unknown-type";
}

char const* formatName(TensorFormat format)
{
    switch (format)
    {
    case TensorFormat::kLINEAR: return "kLINEAR";
    case TensorFormat::kCHW2: return "kCHW2";
    case TensorFormat::kHWC8: return "kHWC8";
    case TensorFormat::kCHW4: return "kCHW4";
    case TensorFormat::kCHW16: return "kCHW16";
    case TensorFormat::kCHW32: return "kCHW32";
    case TensorFormat::kDHWC8: return "kDHWC8";
    case TensorFormat::kCDHW32: return "kCDHW32";
    case TensorFormat::kHWC: return "kHWC";
    case TensorFormat::kDLA_LINEAR: return "kDLA_LINEAR";
    case TensorFormat::kDLA_HWC4: return "kDLA_HWC4";
    case TensorFormat::kHWC16: return "kHWC16";
    case TensorFormat::kDHWC: return "kDHWC";
    }
    return "unknown-format";
}

std::string describe(Case const& testCase)
{
    std::ostringstream text;
    Combination const& combination = testCase.combination;
    text << typeName(combination.inType) << ' ' << formatName(combination.inFormat) << " -> "
         << typeName(combination.outType) << ' ' << formatName(combination.outFormat) << ", N=" << testCase.n
         << " C=" << testCase.c << " H=" << testCase.h << " W=" << testCase.w << ", scale " << testCase.scaleH
         << 'x' << testCase.scaleW;
    return text.str();
}

int64_t Layout::storedChannels() const noexcept
{
    return format == TensorFormat::kHWC8 ? (c + kHwc8Multiple - 1) / kHwc8Multiple * kHwc8Multiple : c;
}

int64_t Layout::elements() const noexcept
{
    return n * storedChannels() * h * w;
}

int64_t Layout::offset(int64_t in, int64_t ic, int64_t iy, int64_t ix) const noexcept
{
    if (format == TensorFormat::kHWC8)
    {
        return ((in * h + iy) * w + ix) * storedChannels() + ic;
    }
    return ((in * c + ic) * h + iy) * w + ix;
}

Layout inputLayout(Case const& testCase)
{
    return {testCase.combination.inFormat, testCase.n, testCase.c, testCase.h, testCase.w};
}

Layout outputLayout(Case const& testCase)
{
    return {testCase.combination.outFormat, testCase.n, testCase.c, testCase.h * testCase.scaleH,
        testCase.w * testCase.scaleW};
}

size_t elementBytes(DataType type)
{
    return type == DataType::kHALF ? 2 : 4;
}

std::vector<uint8_t> randomTensor(DataType type, int64_t elements, uint32_t seed)
{
    std::mt19937 generator(seed);
    size_t const bytes = elementBytes(type);
    std::vector<uint8_t> tensor(static_cast<size_t>(elements) * bytes);
    for (int64_t i = 0; i < elements; ++i)
    {
        uint32_t bits = generator();
        if (bytes == 2)
        {
            // An all-ones exponent (Inf, NaN) loses its top exponent bit.
            auto half = static_cast<uint16_t>(bits);
            if ((half & 0x7C00U) == 0x7C00U)
            {
                half = static_cast<uint16_t>(half & ~0x4000U);
            }
            std::memcpy(tensor.data() + i * 2, &half, 2);
        }
        else
        {
            if ((bits & 0x7F800000U) == 0x7F800000U)
            {
                bits &= ~0x40000000U;
            }
            std::memcpy(tensor.data() + i * 4, &bits, 4);
        }
    }
    return tensor;
}

Comparison compare(Case const& testCase, std::vector<uint8_t> const& input, std::vector<uint8_t> const& output)
{
    Layout const in = inputLayout(testCase);
    Layout const out = outputLayout(testCase);
    DataType const type = testCase.combination.inType;
    size_t const bytes = elementBytes(type);
    Comparison result;
    for (int64_t b = 0; b < out.n; ++b)
    {
        for (int64_t ch = 0; ch < out.storedChannels(); ++ch)
        {
            for (int64_t y = 0; y < out.h; ++y)
            {
                for (int64_t x = 0; x < out.w; ++x)
                {
                    int64_t const outOffset = out.offset(b, ch, y, x);
                    int64_t const inOffset = in.offset(b, ch, y / testCase.scaleH, x / testCase.scaleW);
                    ++result.compared;
                    if (sameBits(output, outOffset, input, inOffset, bytes))
                    {
                        continue;
                    }
                    double const expected = valueAt(type, input, inOffset);
                    double const got = valueAt(type, output, outOffset);
                    double const error = std::isnan(got) ? std::numeric_limits<double>::infinity()
                                                         : std::fabs(got - expected);
                    // A -0 for +0 differs in its bits but not in value: still a mismatch.
                    result.maxAbsError = std::max(result.maxAbsError, error);
                    if (result.mismatches++ == 0)
                    {
                        std::ostringstream text;
                        text << "element [n=" << b << ", c=" << ch << ", y=" << y << ", x=" << x << "] (offset "
                             << outOffset << "): expected " << expected << ", got " << got;
                        result.firstMismatch = text.str();
                    }
                }
            }
        }
    }
    return result;
}

} // namespace unetkit::harness
