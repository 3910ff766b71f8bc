// Drives the UnetkitUpsampleNearest plugin through the calls TensorRT makes, in TensorRT's order:
// the library's getCreators, createPlugin from fields (build phase), the format walk,
// configurePlugin and getWorkspaceSize, getFieldsToSerialize, createPlugin from the serialized
// fields (runtime phase), attachToContext, onShapeChange, and enqueue on a CUDA stream.
#pragma once

#include "cases.h"

#include <NvInferRuntime.h>

#include <memory>
#include <string>
#include <vector>

namespace unetkit::harness
{

// The loaded library and its one creator, found as IPluginRegistry::loadLibrary finds it.
struct LoadedLibrary
{
    void* handle{nullptr};
    nvinfer1::IPluginCreatorV3One* creator{nullptr};
};

// dlopen(RTLD_NOW | RTLD_LOCAL) as Triton does, then setLoggerFinder and getCreators as
// loadLibrary does. Checks that loading registered exactly one creator and that getCreators
// withdrew it; throws std::runtime_error naming what is wrong.
LoadedLibrary loadLibrary(std::string const& path);

// Every (input type, input format, output type, output format) that supportsFormatCombination
// accepts, asked position by position as TensorRT does: position 0 with the output's
// descriptor left unset (filled with a type and format the plugin must not read), then
// position 1 for each accepted input.
std::vector<Combination> walkCombinations(nvinfer1::IPluginCreatorV3One& creator);

struct PluginDeleter
{
    void operator()(nvinfer1::IPluginV3* plugin) const;
};
using PluginPointer = std::unique_ptr<nvinfer1::IPluginV3, PluginDeleter>;

// A case's plugin ready to enqueue: built, configured, serialized, re-created for runtime,
// attached and shaped. `error` names the call that failed, with the plugin's logged message.
struct PreparedPlugin
{
    PluginPointer build;
    PluginPointer runtime;
    PluginPointer attached;
    size_t workspaceBytes{0};
    std::string error;
    nvinfer1::IPluginV3OneRuntime* enqueuer() const;
};

PreparedPlugin prepare(nvinfer1::IPluginCreatorV3One& creator, Case const& testCase);

nvinfer1::PluginTensorDesc tensorDesc(nvinfer1::DataType type, nvinfer1::TensorFormat format, int64_t n,
    int64_t c, int64_t h, int64_t w);

} // namespace unetkit::harness
