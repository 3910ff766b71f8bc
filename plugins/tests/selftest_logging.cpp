// The self-test's stand-in for plugin_logging.cpp: keeps the last error for the checks and
// prints every message, so the test runs without TensorRT's libraries.
#include "plugin_logging.h"

#include <cstdio>
#include <string>

namespace unetkit::plugin
{
namespace selftest
{

std::string gLastError;

std::string const& lastError()
{
    return gLastError;
}

void clearLastError()
{
    gLastError.clear();
}

} // namespace selftest

void setLoggerFinder(nvinfer1::ILoggerFinder* /* finder */) noexcept {}

void logError(char const* message) noexcept
{
    try
    {
        selftest::gLastError = message;
    }
    catch (...)
    {
    }
    std::printf("     [error] %s\n", message);
}

void logWarning(char const* message) noexcept
{
    std::printf("     [warning] %s\n", message);
}

} // namespace unetkit::plugin
