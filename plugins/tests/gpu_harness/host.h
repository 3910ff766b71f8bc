// The side of TensorRT that a plugin library meets, played by the GPU harness so that the real
// libunetkit_plugins.so can be loaded and driven without a TensorRT library:
//  - getPluginRegistry() and getLogger(), exported by the harness executable: the plugin library
//    calls them while it is being loaded (its self-registration) and when it logs;
//  - an ILoggerFinder handed to the library's setLoggerFinder, as IPluginRegistry::loadLibrary does;
//  - the IPluginResourceContext that attachToContext receives.
// The registry records what the library registers and withdraws, so the harness can check that
// exactly one creator is registered on load and that getCreators withdraws it.
#pragma once

#include <NvInferRuntime.h>

#include <string>
#include <vector>

namespace unetkit::harness
{

class Registry final : public nvinfer1::IPluginRegistry
{
public:
    Registry() = default;
    ~Registry() noexcept override = default;

    int32_t registrations() const noexcept;
    int32_t withdrawals() const noexcept;
    std::vector<nvinfer1::IPluginCreatorInterface*> const& registered() const noexcept;

    void setErrorRecorder(nvinfer1::IErrorRecorder* recorder) noexcept override;
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override;
    bool isParentSearchEnabled() const override;
    void setParentSearchEnabled(bool enabled) override;
    PluginLibraryHandle loadLibrary(nvinfer1::AsciiChar const* pluginPath) noexcept override;
    void deregisterLibrary(PluginLibraryHandle handle) noexcept override;
    bool registerCreator(
        nvinfer1::IPluginCreatorInterface& creator, nvinfer1::AsciiChar const* pluginNamespace) noexcept override;
    nvinfer1::IPluginCreatorInterface* const* getAllCreators(int32_t* numCreators) const noexcept override;
    nvinfer1::IPluginCreatorInterface* getCreator(nvinfer1::AsciiChar const* pluginName,
        nvinfer1::AsciiChar const* pluginVersion, nvinfer1::AsciiChar const* pluginNamespace) noexcept override;
    bool deregisterCreator(nvinfer1::IPluginCreatorInterface const& creator) noexcept override;
    nvinfer1::IPluginResource* acquirePluginResource(
        nvinfer1::AsciiChar const* key, nvinfer1::IPluginResource* resource) noexcept override;
    int32_t releasePluginResource(nvinfer1::AsciiChar const* key) noexcept override;
    nvinfer1::IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* numCreators) noexcept override;

private:
    std::vector<nvinfer1::IPluginCreatorInterface*> mCreators;
    int32_t mRegistrations{0};
    int32_t mWithdrawals{0};
    bool mParentSearch{true};
};

// Prints every message at kWARNING and above with its severity; counts the errors.
class Logger final : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* message) noexcept override;
    int32_t errors() const noexcept;
    std::string const& lastError() const noexcept;
    void clear() noexcept;

private:
    int32_t mErrors{0};
    std::string mLastError;
};

class LoggerFinder final : public nvinfer1::ILoggerFinder
{
public:
    explicit LoggerFinder(nvinfer1::ILogger& logger);
    ~LoggerFinder() override = default;
    nvinfer1::ILogger* findLogger() override;

private:
    nvinfer1::ILogger& mLogger;
};

// attachToContext's argument: no GPU allocator and no error recorder, as for an execution
// context created without either.
class ResourceContext final : public nvinfer1::IPluginResourceContext
{
public:
    ~ResourceContext() noexcept override = default;
    nvinfer1::IGpuAllocator* getGpuAllocator() const noexcept override;
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override;
};

Registry& registry();
Logger& logger();

} // namespace unetkit::harness
