#include "host.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace unetkit::harness
{

int32_t Registry::registrations() const noexcept
{
    return mRegistrations;
}

int32_t Registry::withdrawals() const noexcept
{
    return mWithdrawals;
}

std::vector<nvinfer1::IPluginCreatorInterface*> const& Registry::registered() const noexcept
{
    return mCreators;
}

void Registry::setErrorRecorder(nvinfer1::IErrorRecorder* /* recorder */) noexcept {}

nvinfer1::IErrorRecorder* Registry::getErrorRecorder() const noexcept
{
    return nullptr;
}

bool Registry::isParentSearchEnabled() const
{
    return mParentSearch;
}

void Registry::setParentSearchEnabled(bool enabled)
{
    mParentSearch = enabled;
}

// The harness loads the library itself (dlopen, as Triton does) and calls getCreators as
// loadLibrary would; the plugin library never calls these two.
Registry::PluginLibraryHandle Registry::loadLibrary(nvinfer1::AsciiChar const* /* pluginPath */) noexcept
{
    return nullptr;
}

void Registry::deregisterLibrary(PluginLibraryHandle /* handle */) noexcept {}

bool Registry::registerCreator(
    nvinfer1::IPluginCreatorInterface& creator, nvinfer1::AsciiChar const* /* pluginNamespace */) noexcept
{
    if (std::find(mCreators.begin(), mCreators.end(), &creator) != mCreators.end())
    {
        return false;
    }
    mCreators.push_back(&creator);
    ++mRegistrations;
    return true;
}

nvinfer1::IPluginCreatorInterface* const* Registry::getAllCreators(int32_t* numCreators) const noexcept
{
    *numCreators = static_cast<int32_t>(mCreators.size());
    return mCreators.data();
}

nvinfer1::IPluginCreatorInterface* Registry::getCreator(nvinfer1::AsciiChar const* /* pluginName */,
    nvinfer1::AsciiChar const* /* pluginVersion */, nvinfer1::AsciiChar const* /* pluginNamespace */) noexcept
{
    return nullptr;
}

bool Registry::deregisterCreator(nvinfer1::IPluginCreatorInterface const& creator) noexcept
{
    auto const found = std::find(mCreators.begin(), mCreators.end(), &creator);
    if (found == mCreators.end())
    {
        return false;
    }
    mCreators.erase(found);
    ++mWithdrawals;
    return true;
}

nvinfer1::IPluginResource* Registry::acquirePluginResource(
    nvinfer1::AsciiChar const* /* key */, nvinfer1::IPluginResource* /* resource */) noexcept
{
    return nullptr;
}

int32_t Registry::releasePluginResource(nvinfer1::AsciiChar const* /* key */) noexcept
{
    return -1;
}

nvinfer1::IPluginCreatorInterface* const* Registry::getAllCreatorsRecursive(int32_t* numCreators) noexcept
{
    return getAllCreators(numCreators);
}

void Logger::log(Severity severity, nvinfer1::AsciiChar const* message) noexcept
{
    if (severity <= Severity::kERROR)
    {
        ++mErrors;
        try
        {
            mLastError = message;
        }
        catch (...)
        {
        }
    }
    if (severity <= Severity::kWARNING)
    {
        std::printf("  [%s] %s\n", severity <= Severity::kERROR ? "error" : "warning", message);
    }
}

int32_t Logger::errors() const noexcept
{
    return mErrors;
}

std::string const& Logger::lastError() const noexcept
{
    return mLastError;
}

void Logger::clear() noexcept
{
    mErrors = 0;
    mLastError.clear();
}

LoggerFinder::LoggerFinder(nvinfer1::ILogger& logger)
    : mLogger(logger)
{
}

nvinfer1::ILogger* LoggerFinder::findLogger()
{
    return &mLogger;
}

nvinfer1::IGpuAllocator* ResourceContext::getGpuAllocator() const noexcept
{
    return nullptr;
}

nvinfer1::IErrorRecorder* ResourceContext::getErrorRecorder() const noexcept
{
    return nullptr;
}

Registry& registry()
{
    static Registry instance;
    return instance;
}

Logger& logger()
{
    static Logger instance;
    return instance;
}

} // namespace unetkit::harness

// TensorRT's two C entry points that the plugin library uses, exported by the executable
// (CMake ENABLE_EXPORTS) so that the library's undefined references resolve to them.
extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    return &unetkit::harness::registry();
}

extern "C" __attribute__((visibility("default"))) nvinfer1::ILogger* getLogger() noexcept
{
    return &unetkit::harness::logger();
}
