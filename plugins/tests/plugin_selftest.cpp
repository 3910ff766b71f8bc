// Self-test of the UnetkitUpsampleNearest plugin classes, built where TensorRT's headers are and
// run without TensorRT's libraries or a GPU: it drives the creator and the plugin through the
// calls TensorRT makes (create from fields, serialize, re-create for runtime, format and type
// queries) and checks the one-line errors for bad attributes. Exit status 0 when all pass.
// Linked with selftest_logging.cpp in place of plugin_logging.cpp, which records the messages.
#include "upsample_nearest_plugin.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using nvinfer1::DataType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::TensorFormat;
using nvinfer1::TensorRTPhase;
using unetkit::plugin::UpsampleNearestPlugin;
using unetkit::plugin::UpsampleNearestPluginCreator;

namespace unetkit::plugin::selftest
{
std::string const& lastError();
void clearLastError();
} // namespace unetkit::plugin::selftest

namespace
{

int gFailures = 0;

void check(bool condition, char const* what)
{
    std::printf("%s %s\n", condition ? "ok  " : "FAIL", what);
    gFailures += condition ? 0 : 1;
}

struct PluginDeleter
{
    void operator()(nvinfer1::IPluginV3* plugin) const
    {
        delete plugin;
    }
};
using PluginPointer = std::unique_ptr<nvinfer1::IPluginV3, PluginDeleter>;

PluginPointer create(UpsampleNearestPluginCreator& creator, std::vector<PluginField> const& fields,
    TensorRTPhase phase = TensorRTPhase::kBUILD)
{
    PluginFieldCollection collection{static_cast<int32_t>(fields.size()), fields.data()};
    return PluginPointer(creator.createPlugin("upsample", &collection, phase));
}

std::vector<PluginField> intFields(int32_t const* scaleH, int32_t const* scaleW)
{
    return {PluginField("scale_h", scaleH, PluginFieldType::kINT32, 1),
        PluginField("scale_w", scaleW, PluginFieldType::kINT32, 1)};
}

bool failsWith(UpsampleNearestPluginCreator& creator, std::vector<PluginField> const& fields, char const* message)
{
    unetkit::plugin::selftest::clearLastError();
    PluginPointer plugin = create(creator, fields);
    std::string const& logged = unetkit::plugin::selftest::lastError();
    if (plugin == nullptr && logged.find(message) == std::string::npos)
    {
        std::printf("     logged: %s\n", logged.c_str());
    }
    return plugin == nullptr && logged.find(message) != std::string::npos;
}

nvinfer1::DynamicPluginTensorDesc tensor(DataType type, TensorFormat format)
{
    nvinfer1::DynamicPluginTensorDesc desc{};
    desc.desc.type = type;
    desc.desc.format = format;
    desc.desc.dims.nbDims = 4;
    return desc;
}

bool supports(UpsampleNearestPlugin& plugin, DataType inType, TensorFormat inFormat, DataType outType,
    TensorFormat outFormat)
{
    nvinfer1::DynamicPluginTensorDesc inOut[2] = {tensor(inType, inFormat), tensor(outType, outFormat)};
    return plugin.supportsFormatCombination(0, inOut, 1, 1) && plugin.supportsFormatCombination(1, inOut, 1, 1);
}

void testCreatorDeclaresTheAttributes(UpsampleNearestPluginCreator& creator)
{
    PluginFieldCollection const* names = creator.getFieldNames();
    check(names->nbFields == 2, "creator declares two attributes");
    check(std::strcmp(names->fields[0].name, "scale_h") == 0 && std::strcmp(names->fields[1].name, "scale_w") == 0,
        "attributes are scale_h, scale_w");
    check(names->fields[0].type == PluginFieldType::kINT32 && names->fields[1].type == PluginFieldType::kINT32,
        "attributes are kINT32");
    check(std::strcmp(creator.getPluginName(), "UnetkitUpsampleNearest") == 0
            && std::strcmp(creator.getPluginVersion(), "1") == 0 && std::strcmp(creator.getPluginNamespace(), "") == 0,
        "creator is UnetkitUpsampleNearest version 1 in the empty namespace");
}

void testSerializationRoundTrip(UpsampleNearestPluginCreator& creator)
{
    int32_t const scaleH = 3;
    int32_t const scaleW = 2;
    PluginPointer built = create(creator, intFields(&scaleH, &scaleW));
    check(built != nullptr, "createPlugin accepts kINT32 scale_h=3 scale_w=2");
    if (built == nullptr)
    {
        return;
    }
    auto* runtime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
        built->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* serialized = runtime->getFieldsToSerialize();
    check(serialized != nullptr && serialized->nbFields == 2, "getFieldsToSerialize returns two fields");
    std::vector<PluginField> fields(serialized->fields, serialized->fields + serialized->nbFields);
    PluginPointer restored = create(creator, fields, TensorRTPhase::kRUNTIME);
    check(restored != nullptr, "createPlugin (runtime phase) accepts the serialized fields");
    if (restored == nullptr)
    {
        return;
    }
    auto* restoredRuntime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
        restored->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* again = restoredRuntime->getFieldsToSerialize();
    bool same = again->nbFields == 2;
    for (int32_t i = 0; same && i < 2; ++i)
    {
        same = std::strcmp(again->fields[i].name, fields[i].name) == 0
            && *static_cast<int32_t const*>(again->fields[i].data) == *static_cast<int32_t const*>(fields[i].data);
    }
    check(same, "re-created plugin serializes the same scale_h=3, scale_w=2");

    PluginPointer copy(built->clone());
    auto* copyRuntime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
        copy->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    PluginFieldCollection const* copied = copyRuntime->getFieldsToSerialize();
    built.reset();
    check(*static_cast<int32_t const*>(copied->fields[0].data) == 3, "a clone's fields outlive the original");
}

void testInt64FieldsAreAccepted(UpsampleNearestPluginCreator& creator)
{
    int64_t const scaleH = 2;
    int64_t const scaleW = 2;
    std::vector<PluginField> fields{PluginField("scale_h", &scaleH, PluginFieldType::kINT64, 1),
        PluginField("scale_w", &scaleW, PluginFieldType::kINT64, 1)};
    check(create(creator, fields) != nullptr, "createPlugin accepts kINT64 attributes");
}

void testBadAttributesAreRefused(UpsampleNearestPluginCreator& creator)
{
    int32_t const two = 2;
    int32_t const zero = 0;
    int32_t const huge = 5000;
    float const twoFloat = 2.0F;
    check(failsWith(creator, {PluginField("scale_h", &two, PluginFieldType::kINT32, 1)}, "attribute scale_w is missing"),
        "missing scale_w is refused by name");
    check(failsWith(creator, intFields(&zero, &two), "attribute scale_h = 0 is out of range"), "scale_h=0 is refused");
    check(failsWith(creator, intFields(&two, &huge), "attribute scale_w = 5000 is out of range"),
        "scale_w=5000 is refused");
    check(failsWith(creator,
              {PluginField("scale_h", &twoFloat, PluginFieldType::kFLOAT32, 1),
                  PluginField("scale_w", &two, PluginFieldType::kINT32, 1)},
              "attribute scale_h must be an integer"),
        "a float scale_h is refused");
    std::vector<PluginField> extra = intFields(&two, &two);
    extra.emplace_back("mode", &two, PluginFieldType::kINT32, 1);
    check(failsWith(creator, extra, "unknown attribute mode"), "an unknown attribute is refused by name");
    int32_t const pair[2] = {2, 2};
    check(failsWith(creator,
              {PluginField("scale_h", pair, PluginFieldType::kINT32, 2),
                  PluginField("scale_w", &two, PluginFieldType::kINT32, 1)},
              "must hold exactly one integer"),
        "a two-element scale_h is refused");
    check(failsWith(creator, {}, "attribute scale_h is missing"), "no attributes at all is refused");
}

void testTypesAndFormats()
{
    UpsampleNearestPlugin plugin({2, 2});
    check(supports(plugin, DataType::kFLOAT, TensorFormat::kLINEAR, DataType::kFLOAT, TensorFormat::kLINEAR),
        "fp32 kLINEAR is supported");
    check(supports(plugin, DataType::kHALF, TensorFormat::kLINEAR, DataType::kHALF, TensorFormat::kLINEAR),
        "fp16 kLINEAR is supported");
    check(supports(plugin, DataType::kHALF, TensorFormat::kHWC8, DataType::kHALF, TensorFormat::kHWC8),
        "fp16 kHWC8 is supported");
    check(!supports(plugin, DataType::kFLOAT, TensorFormat::kHWC8, DataType::kFLOAT, TensorFormat::kHWC8),
        "fp32 kHWC8 is not offered");
    check(!supports(plugin, DataType::kHALF, TensorFormat::kLINEAR, DataType::kHALF, TensorFormat::kHWC8),
        "output format must match the input's");
    check(!supports(plugin, DataType::kHALF, TensorFormat::kLINEAR, DataType::kFLOAT, TensorFormat::kLINEAR),
        "output type must match the input's");
    check(!supports(plugin, DataType::kINT8, TensorFormat::kLINEAR, DataType::kINT8, TensorFormat::kLINEAR),
        "int8 is not offered");

    DataType const in[1] = {DataType::kHALF};
    DataType out[1] = {DataType::kFLOAT};
    check(plugin.getOutputDataTypes(out, 1, in, 1) == 0 && out[0] == DataType::kHALF, "output type follows input");
    DataType const bad[1] = {DataType::kINT32};
    check(plugin.getOutputDataTypes(out, 1, bad, 1) != 0, "int32 input is refused with an error code");
    check(plugin.getNbOutputs() == 1, "one output");
}

void testEnqueueRefusesBadShapesWithoutThrowing()
{
    UpsampleNearestPlugin plugin({2, 2});
    nvinfer1::PluginTensorDesc desc{};
    desc.type = DataType::kFLOAT;
    desc.format = TensorFormat::kLINEAR;
    desc.dims.nbDims = 3;
    void const* inputs[1] = {nullptr};
    void* outputs[1] = {nullptr};
    unetkit::plugin::selftest::clearLastError();
    check(plugin.enqueue(&desc, &desc, inputs, outputs, nullptr, nullptr) != 0
            && unetkit::plugin::selftest::lastError().find("expects a 4-D NCHW tensor, got rank 3")
                != std::string::npos,
        "enqueue on a rank-3 tensor returns an error code and logs why");
}

} // namespace

int main()
{
    UpsampleNearestPluginCreator creator;
    testCreatorDeclaresTheAttributes(creator);
    testSerializationRoundTrip(creator);
    testInt64FieldsAreAccepted(creator);
    testBadAttributesAreRefused(creator);
    testTypesAndFormats();
    testEnqueueRefusesBadShapesWithoutThrowing();
    std::printf("%d failure(s)\n", gFailures);
    return gFailures == 0 ? 0 : 1;
}
