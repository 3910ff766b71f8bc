// Where the plugin library's messages go: the logger of the TensorRT object that called the
// plugin when TensorRT handed over an ILoggerFinder (IPluginRegistry::loadLibrary does), else
// TensorRT's global logger (library loaded by dlopen, as Triton does), else stderr.
#pragma once

#include <NvInferRuntime.h>

namespace unetkit::plugin
{

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

void logError(char const* message) noexcept;

void logWarning(char const* message) noexcept;

} // namespace unetkit::plugin
