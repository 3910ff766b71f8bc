#include "plugin_logging.h"

#include <atomic>
#include <cstdio>

namespace unetkit::plugin
{
namespace
{

std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

nvinfer1::ILogger* currentLogger() noexcept
{
    if (nvinfer1::ILoggerFinder* finder = gLoggerFinder.load())
    {
        if (nvinfer1::ILogger* logger = finder->findLogger())
        {
            return logger;
        }
    }
    return getLogger();
}

void log(nvinfer1::ILogger::Severity severity, char const* message) noexcept
{
    try
    {
        if (nvinfer1::ILogger* logger = currentLogger())
        {
            logger->log(severity, message);
            return;
        }
    }
    catch (...)
    {
        // A throwing user logger must not take the plugin down: fall through to stderr.
    }
    std::fprintf(stderr, "%s\n", message);
}

} // namespace

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gLoggerFinder.store(finder);
}

void logError(char const* message) noexcept
{
    log(nvinfer1::ILogger::Severity::kERROR, message);
}

void logWarning(char const* message) noexcept
{
    log(nvinfer1::ILogger::Severity::kWARNING, message);
}

} // namespace unetkit::plugin
