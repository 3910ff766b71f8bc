#include "plugin_driver.h"

#include "host.h"

#include <dlfcn.h>

#include <cstring>
#include <stdexcept>

using nvinfer1::DataType;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::PluginCapabilityType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;

namespace unetkit::harness
{
namespace
{

using GetCreators = nvinfer1::IPluginCreatorInterface* const* (*) (int32_t&);
using SetLoggerFinder = void (*)(nvinfer1::ILoggerFinder*);

constexpr char const* kPluginName = "UnetkitUpsampleNearest";
constexpr char const* kCreatorKind = "PLUGIN CREATOR_V3ONE";

void require(bool condition, std::string const& message)
{
    if (!condition)
    {
        throw std::runtime_error(message);
    }
}

template <typename Capability>
Capability* capability(nvinfer1::IPluginV3& plugin, PluginCapabilityType type)
{
    return static_cast<Capability*>(plugin.getCapabilityInterface(type));
}

nvinfer1::Dims dims4(int64_t n, int64_t c, int64_t h, int64_t w)
{
    nvinfer1::Dims dims{};
    dims.nbDims = 4;
    dims.d[0] = n;
    dims.d[1] = c;
    dims.d[2] = h;
    dims.d[3] = w;
    return dims;
}

// A build-time descriptor: batch, height and width dynamic (-1) within [1, the case's size].
DynamicPluginTensorDesc dynamicDesc(DataType type, TensorFormat format, int64_t n, int64_t c, int64_t h, int64_t w)
{
    DynamicPluginTensorDesc desc{};
    desc.desc = tensorDesc(type, format, -1, c, -1, -1);
    desc.min = dims4(1, c, 1, 1);
    desc.opt = dims4(n, c, h, w);
    desc.max = dims4(n, c, h, w);
    return desc;
}

std::string failed(char const* call)
{
    std::string const& logged = logger().lastError();
    return std::string(call) + " failed" + (logged.empty() ? std::string() : ": " + logged);
}

} // namespace

void PluginDeleter::operator()(nvinfer1::IPluginV3* plugin) const
{
    delete plugin;
}

PluginTensorDesc tensorDesc(DataType type, TensorFormat format, int64_t n, int64_t c, int64_t h, int64_t w)
{
    PluginTensorDesc desc{};
    desc.dims = dims4(n, c, h, w);
    desc.type = type;
    desc.format = format;
    desc.scale = 1.0F;
    return desc;
}

LoadedLibrary loadLibrary(std::string const& path)
{
    static LoggerFinder finder(logger());
    LoadedLibrary library;
    library.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library.handle == nullptr)
    {
        throw std::runtime_error(std::string("cannot load the plugin library: ") + dlerror());
    }
    Registry const& registered = registry();
    require(registered.registrations() == 1 && registered.registered().size() == 1,
        "loading the library registered " + std::to_string(registered.registrations())
            + " creators; expected exactly one (its load-time registration)");

    auto setLoggerFinder = reinterpret_cast<SetLoggerFinder>(dlsym(library.handle, "setLoggerFinder"));
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(library.handle, "getCreators"));
    require(setLoggerFinder != nullptr && getCreators != nullptr,
        "the library does not export setLoggerFinder and getCreators (extern \"C\")");
    setLoggerFinder(&finder);
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = getCreators(count);
    require(count == 1 && creators != nullptr && creators[0] != nullptr,
        "getCreators returned " + std::to_string(count) + " creators; expected one");
    require(registered.withdrawals() == 1 && registered.registered().empty(),
        "getCreators did not withdraw the load-time registration (loadLibrary would fail with "
        "\"creator ... exists already\")");
    nvinfer1::InterfaceInfo const info = creators[0]->getInterfaceInfo();
    require(std::strcmp(info.kind, kCreatorKind) == 0,
        std::string("the creator's interface is ") + info.kind + "; expected " + kCreatorKind);
    library.creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[0]);
    require(std::strcmp(library.creator->getPluginName(), kPluginName) == 0
            && std::strcmp(library.creator->getPluginVersion(), "1") == 0,
        std::string("the creator is ") + library.creator->getPluginName() + " version "
            + library.creator->getPluginVersion() + "; expected " + kPluginName + " version 1");
    return library;
}

std::vector<Combination> walkCombinations(nvinfer1::IPluginCreatorV3One& creator)
{
    int32_t const two = 2;
    PluginField fields[] = {PluginField("scale_h", &two, PluginFieldType::kINT32, 1),
        PluginField("scale_w", &two, PluginFieldType::kINT32, 1)};
    PluginFieldCollection collection{2, fields};
    PluginPointer plugin(creator.createPlugin("walk", &collection, nvinfer1::TensorRTPhase::kBUILD));
    require(plugin != nullptr, failed("createPlugin (build phase, scale 2x2)"));
    auto* build = capability<nvinfer1::IPluginV3OneBuild>(*plugin, PluginCapabilityType::kBUILD);
    require(build != nullptr, "getCapabilityInterface(kBUILD) returned null");

    std::vector<Combination> combinations;
    int32_t const types = nvinfer1::EnumMax<DataType>();
    int32_t const formats = nvinfer1::EnumMax<TensorFormat>();
    for (int32_t inType = 0; inType < types; ++inType)
    {
        for (int32_t inFormat = 0; inFormat < formats; ++inFormat)
        {
            DynamicPluginTensorDesc inOut[2] = {
                dynamicDesc(static_cast<DataType>(inType), static_cast<TensorFormat>(inFormat), 1, 8, 4, 4),
                dynamicDesc(DataType::kINT8, TensorFormat::kCHW32, 1, 8, 8, 8)};
            if (!build->supportsFormatCombination(0, inOut, 1, 1))
            {
                continue;
            }
            for (int32_t outType = 0; outType < types; ++outType)
            {
                for (int32_t outFormat = 0; outFormat < formats; ++outFormat)
                {
                    inOut[1] = dynamicDesc(
                        static_cast<DataType>(outType), static_cast<TensorFormat>(outFormat), 1, 8, 8, 8);
                    if (build->supportsFormatCombination(1, inOut, 1, 1))
                    {
                        combinations.push_back({static_cast<DataType>(inType), static_cast<TensorFormat>(inFormat),
                            static_cast<DataType>(outType), static_cast<TensorFormat>(outFormat)});
                    }
                }
            }
        }
    }
    return combinations;
}

nvinfer1::IPluginV3OneRuntime* PreparedPlugin::enqueuer() const
{
    return capability<nvinfer1::IPluginV3OneRuntime>(*attached, PluginCapabilityType::kRUNTIME);
}

PreparedPlugin prepare(nvinfer1::IPluginCreatorV3One& creator, Case const& testCase)
{
    logger().clear();
    PreparedPlugin prepared;
    Combination const& combination = testCase.combination;
    PluginField fields[] = {PluginField("scale_h", &testCase.scaleH, PluginFieldType::kINT32, 1),
        PluginField("scale_w", &testCase.scaleW, PluginFieldType::kINT32, 1)};
    PluginFieldCollection collection{2, fields};
    prepared.build.reset(creator.createPlugin("upsample", &collection, nvinfer1::TensorRTPhase::kBUILD));
    if (prepared.build == nullptr)
    {
        prepared.error = failed("createPlugin (build phase)");
        return prepared;
    }
    auto* core = capability<nvinfer1::IPluginV3OneCore>(*prepared.build, PluginCapabilityType::kCORE);
    auto* build = capability<nvinfer1::IPluginV3OneBuild>(*prepared.build, PluginCapabilityType::kBUILD);
    auto* buildRuntime = capability<nvinfer1::IPluginV3OneRuntime>(*prepared.build, PluginCapabilityType::kRUNTIME);
    if (core == nullptr || build == nullptr || buildRuntime == nullptr)
    {
        prepared.error = "getCapabilityInterface returned null";
        return prepared;
    }
    DataType outputType = DataType::kINT8;
    if (build->getNbOutputs() != 1 || build->getOutputDataTypes(&outputType, 1, &combination.inType, 1) != 0
        || outputType != combination.outType)
    {
        prepared.error = failed("getNbOutputs/getOutputDataTypes");
        return prepared;
    }
    DynamicPluginTensorDesc inOut[2]
        = {dynamicDesc(combination.inType, combination.inFormat, testCase.n, testCase.c, testCase.h, testCase.w),
            dynamicDesc(combination.outType, combination.outFormat, testCase.n, testCase.c,
                testCase.h * testCase.scaleH, testCase.w * testCase.scaleW)};
    if (!build->supportsFormatCombination(0, inOut, 1, 1) || !build->supportsFormatCombination(1, inOut, 1, 1))
    {
        prepared.error = failed("supportsFormatCombination");
        return prepared;
    }
    if (build->configurePlugin(&inOut[0], 1, &inOut[1], 1) != 0)
    {
        prepared.error = failed("configurePlugin");
        return prepared;
    }
    prepared.workspaceBytes = build->getWorkspaceSize(&inOut[0], 1, &inOut[1], 1);

    PluginFieldCollection const* serialized = buildRuntime->getFieldsToSerialize();
    if (serialized == nullptr)
    {
        prepared.error = failed("getFieldsToSerialize");
        return prepared;
    }
    prepared.runtime.reset(creator.createPlugin("upsample", serialized, nvinfer1::TensorRTPhase::kRUNTIME));
    if (prepared.runtime == nullptr)
    {
        prepared.error = failed("createPlugin (runtime phase, serialized fields)");
        return prepared;
    }
    static ResourceContext context;
    auto* runtime = capability<nvinfer1::IPluginV3OneRuntime>(*prepared.runtime, PluginCapabilityType::kRUNTIME);
    prepared.attached.reset(runtime == nullptr ? nullptr : runtime->attachToContext(&context));
    if (prepared.attached == nullptr || prepared.enqueuer() == nullptr)
    {
        prepared.error = failed("attachToContext");
        return prepared;
    }
    PluginTensorDesc const in
        = tensorDesc(combination.inType, combination.inFormat, testCase.n, testCase.c, testCase.h, testCase.w);
    PluginTensorDesc const out = tensorDesc(combination.outType, combination.outFormat, testCase.n, testCase.c,
        testCase.h * testCase.scaleH, testCase.w * testCase.scaleW);
    if (prepared.enqueuer()->onShapeChange(&in, 1, &out, 1) != 0)
    {
        prepared.error = failed("onShapeChange");
    }
    return prepared;
}

} // namespace unetkit::harness
