#include "upsample_nearest_plugin.h"

#include "plugin_logging.h"
#include "upsample_nearest.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>

using nvinfer1::DataType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::TensorFormat;

namespace unetkit::plugin
{
namespace
{

// The one declaration of the plugin's attributes: getFieldNames, getFieldsToSerialize and
// createPlugin (build and runtime phases) all walk this table.
struct IntAttribute
{
    char const* name;
    int32_t UpsampleNearestParams::*member;
};

constexpr IntAttribute kAttributes[] = {
    {"scale_h", &UpsampleNearestParams::scaleH},
    {"scale_w", &UpsampleNearestParams::scaleW},
};

// Far beyond any U-Net; a larger factor is a wrong attribute, not a model.
constexpr int64_t kMaxScale = 1024;
constexpr int32_t kRank = 4;
constexpr int64_t kHwc8ChannelMultiple = 8;

std::string prefixed(char const* where, char const* what)
{
    return std::string(kUpsampleNearestName) + "::" + where + ": " + what;
}

// Runs a TensorRT-facing method body; any exception becomes one logged line and `onError`.
template <typename Result, typename Body>
Result guarded(char const* where, Result onError, Body&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& error)
    {
        logError(prefixed(where, error.what()).c_str());
    }
    catch (...)
    {
        logError(prefixed(where, "unknown exception").c_str());
    }
    return onError;
}

void require(bool condition, std::string const& message)
{
    if (!condition)
    {
        throw std::invalid_argument(message);
    }
}

int64_t readInteger(PluginField const& field)
{
    require(field.data != nullptr && field.length == 1,
        std::string("attribute ") + field.name + " must hold exactly one integer");
    switch (field.type)
    {
    case PluginFieldType::kINT32: return *static_cast<int32_t const*>(field.data);
    case PluginFieldType::kINT64: return *static_cast<int64_t const*>(field.data);
    default:
        throw std::invalid_argument(
            std::string("attribute ") + field.name + " must be an integer (kINT32), got field type "
            + std::to_string(static_cast<int32_t>(field.type)));
    }
}

UpsampleNearestParams parseParams(PluginFieldCollection const* fields)
{
    require(fields != nullptr, "no attributes given; scale_h and scale_w are required");
    UpsampleNearestParams params;
    bool seen[std::size(kAttributes)] = {};
    for (int32_t i = 0; i < fields->nbFields; ++i)
    {
        PluginField const& field = fields->fields[i];
        require(field.name != nullptr, "attribute without a name");
        bool known = false;
        for (size_t a = 0; a < std::size(kAttributes); ++a)
        {
            if (std::strcmp(field.name, kAttributes[a].name) != 0)
            {
                continue;
            }
            int64_t const value = readInteger(field);
            require(value >= 1 && value <= kMaxScale,
                std::string("attribute ") + field.name + " = " + std::to_string(value)
                    + " is out of range; use an integer upsampling factor from 1 to " + std::to_string(kMaxScale));
            params.*(kAttributes[a].member) = static_cast<int32_t>(value);
            seen[a] = true;
            known = true;
        }
        require(known,
            std::string("unknown attribute ") + field.name + "; the attributes are scale_h and scale_w");
    }
    for (size_t a = 0; a < std::size(kAttributes); ++a)
    {
        require(seen[a], std::string("attribute ") + kAttributes[a].name + " is missing");
    }
    return params;
}

bool isSupported(DataType type, TensorFormat format)
{
    return (type == DataType::kFLOAT && format == TensorFormat::kLINEAR)
        || (type == DataType::kHALF && (format == TensorFormat::kLINEAR || format == TensorFormat::kHWC8));
}

void requireOneInOut(int32_t nbInputs, int32_t nbOutputs)
{
    require(nbInputs == 1 && nbOutputs == 1,
        "expects 1 input and 1 output, got " + std::to_string(nbInputs) + " and " + std::to_string(nbOutputs));
}

void requireRank(int32_t nbDims)
{
    require(nbDims == kRank,
        "expects a 4-D NCHW tensor, got rank " + std::to_string(nbDims) + "; upsample 2-D images only");
}

int toInt(int64_t value)
{
    require(value >= 0 && value <= std::numeric_limits<int>::max(),
        "dimension " + std::to_string(value) + " does not fit the kernel's 32-bit sizes");
    return static_cast<int>(value);
}

} // namespace

UpsampleNearestPlugin::UpsampleNearestPlugin(UpsampleNearestParams params)
    : mParams(params)
{
}

// The serialized-field view points into this object, so a copy rebuilds its own.
UpsampleNearestPlugin::UpsampleNearestPlugin(UpsampleNearestPlugin const& other)
    : UpsampleNearestPlugin(other.mParams)
{
}

nvinfer1::IPluginCapability* UpsampleNearestPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    logError(prefixed("getCapabilityInterface", "unknown capability type").c_str());
    return nullptr;
}

nvinfer1::IPluginV3* UpsampleNearestPlugin::clone() noexcept
{
    return guarded<nvinfer1::IPluginV3*>("clone", nullptr, [&] { return new UpsampleNearestPlugin(*this); });
}

char const* UpsampleNearestPlugin::getPluginName() const noexcept
{
    return kUpsampleNearestName;
}

char const* UpsampleNearestPlugin::getPluginVersion() const noexcept
{
    return kUpsampleNearestVersion;
}

char const* UpsampleNearestPlugin::getPluginNamespace() const noexcept
{
    return kUpsampleNearestNamespace;
}

int32_t UpsampleNearestPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return guarded<int32_t>("configurePlugin", -1, [&] {
        requireOneInOut(nbInputs, nbOutputs);
        requireRank(in[0].desc.dims.nbDims);
        require(isSupported(in[0].desc.type, in[0].desc.format) && out[0].desc.type == in[0].desc.type,
            "unsupported type/format; use fp32 or fp16 (kLINEAR, or kHWC8 for fp16)");
        return 0;
    });
}

int32_t UpsampleNearestPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    return guarded<int32_t>("getOutputDataTypes", -1, [&] {
        requireOneInOut(nbInputs, nbOutputs);
        require(inputTypes[0] == DataType::kFLOAT || inputTypes[0] == DataType::kHALF,
            "input must be fp32 or fp16; cast the tensor before the upsampling");
        outputTypes[0] = inputTypes[0];
        return 0;
    });
}

int32_t UpsampleNearestPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /* shapeInputs */, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    return guarded<int32_t>("getOutputShapes", -1, [&] {
        requireOneInOut(nbInputs, nbOutputs);
        require(nbShapeInputs == 0, "takes no shape inputs");
        requireRank(inputs[0].nbDims);
        nvinfer1::DimsExprs& output = outputs[0];
        output.nbDims = kRank;
        output.d[0] = inputs[0].d[0];
        output.d[1] = inputs[0].d[1];
        output.d[2] = exprBuilder.operation(
            nvinfer1::DimensionOperation::kPROD, *inputs[0].d[2], *exprBuilder.constant(mParams.scaleH));
        output.d[3] = exprBuilder.operation(
            nvinfer1::DimensionOperation::kPROD, *inputs[0].d[3], *exprBuilder.constant(mParams.scaleW));
        return 0;
    });
}

bool UpsampleNearestPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return guarded<bool>("supportsFormatCombination", false, [&] {
        requireOneInOut(nbInputs, nbOutputs);
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        if (pos == 0)
        {
            return isSupported(desc.type, desc.format);
        }
        return desc.type == inOut[0].desc.type && desc.format == inOut[0].desc.format;
    });
}

int32_t UpsampleNearestPlugin::getNbOutputs() const noexcept
{
    return 1;
}

int32_t UpsampleNearestPlugin::onShapeChange(
    nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    return guarded<int32_t>("onShapeChange", -1, [&] {
        requireOneInOut(nbInputs, nbOutputs);
        requireRank(in[0].dims.nbDims);
        requireRank(out[0].dims.nbDims);
        require(out[0].dims.d[2] == in[0].dims.d[2] * mParams.scaleH
                && out[0].dims.d[3] == in[0].dims.d[3] * mParams.scaleW,
            "output shape does not match input shape times (scale_h, scale_w)");
        return 0;
    });
}

int32_t UpsampleNearestPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* /* outputDesc */, void const* const* inputs, void* const* outputs,
    void* /* workspace */, cudaStream_t stream) noexcept
{
    return guarded<int32_t>("enqueue", -1, [&] {
        nvinfer1::Dims const& dims = inputDesc[0].dims;
        requireRank(dims.nbDims);
        int const dtype = inputDesc[0].type == DataType::kHALF ? UNETKIT_DTYPE_FP16 : UNETKIT_DTYPE_FP32;
        bool const channelsLast = inputDesc[0].format == TensorFormat::kHWC8;
        // kHWC8 stores the channels padded to a multiple of 8; the padding is copied along.
        int64_t const channels = channelsLast
            ? (dims.d[1] + kHwc8ChannelMultiple - 1) / kHwc8ChannelMultiple * kHwc8ChannelMultiple
            : dims.d[1];
        int const status = unetkit_upsample_nearest(inputs[0], outputs[0], dtype,
            channelsLast ? UNETKIT_LAYOUT_NHWC : UNETKIT_LAYOUT_NCHW, toInt(dims.d[0]), toInt(channels),
            toInt(dims.d[2]), toInt(dims.d[3]), mParams.scaleH, mParams.scaleW, stream);
        require(status == cudaSuccess,
            std::string("kernel launch failed: ") + cudaGetErrorString(static_cast<cudaError_t>(status)));
        return 0;
    });
}

nvinfer1::IPluginV3* UpsampleNearestPlugin::attachToContext(nvinfer1::IPluginResourceContext* /* context */) noexcept
{
    return clone();
}

PluginFieldCollection const* UpsampleNearestPlugin::getFieldsToSerialize() noexcept
{
    return guarded<PluginFieldCollection const*>("getFieldsToSerialize", nullptr, [&] {
        mSerializedFields.clear();
        for (IntAttribute const& attribute : kAttributes)
        {
            mSerializedFields.emplace_back(attribute.name, &(mParams.*(attribute.member)), PluginFieldType::kINT32, 1);
        }
        mSerializedCollection.nbFields = static_cast<int32_t>(mSerializedFields.size());
        mSerializedCollection.fields = mSerializedFields.data();
        return &mSerializedCollection;
    });
}

UpsampleNearestPluginCreator::UpsampleNearestPluginCreator()
{
    for (IntAttribute const& attribute : kAttributes)
    {
        mFieldNames.emplace_back(attribute.name, nullptr, PluginFieldType::kINT32, 1);
    }
    mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
    mFieldCollection.fields = mFieldNames.data();
}

char const* UpsampleNearestPluginCreator::getPluginName() const noexcept
{
    return kUpsampleNearestName;
}

char const* UpsampleNearestPluginCreator::getPluginVersion() const noexcept
{
    return kUpsampleNearestVersion;
}

char const* UpsampleNearestPluginCreator::getPluginNamespace() const noexcept
{
    return kUpsampleNearestNamespace;
}

PluginFieldCollection const* UpsampleNearestPluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

nvinfer1::IPluginV3* UpsampleNearestPluginCreator::createPlugin(
    char const* /* name */, PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /* phase */) noexcept
{
    return guarded<nvinfer1::IPluginV3*>(
        "createPlugin", nullptr, [&] { return new UpsampleNearestPlugin(parseParams(fc)); });
}

} // namespace unetkit::plugin
