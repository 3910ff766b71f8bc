// How libunetkit_plugins.so makes its creator known to TensorRT, by either of two loaders:
//
//  1. dlopen alone (Triton's --backend-config=tensorrt,plugins=..., LD_PRELOAD,
//     trtexec --staticPlugins): nobody calls into the library, so a static object registers the
//     creator with getPluginRegistry() while the library is being loaded.
//  2. IPluginRegistry::loadLibrary (trtexec --dynamicPlugins, Python registry.load_library):
//     TensorRT dlopens the library (running the static registration above), then calls
//     setLoggerFinder and getCreators and registers every creator returned itself; it fails with
//     "creator ... exists already" if one is registered. So getCreators first withdraws the
//     static registration: each way ends with exactly one registration, owned by the loader that
//     asked for it (loadLibrary's is undone by deregisterLibrary, the static one on dlclose).
#include "plugin_logging.h"
#include "upsample_nearest_plugin.h"

#include <NvInferRuntime.h>

#include <iterator>
#include <mutex>

// TENSORRTAPI exports only inside TensorRT's own build; this library is built -fvisibility=hidden.
#define UNETKIT_PLUGIN_EXPORT __attribute__((visibility("default")))

namespace
{

using unetkit::plugin::UpsampleNearestPluginCreator;

UpsampleNearestPluginCreator& upsampleNearestCreator()
{
    static UpsampleNearestPluginCreator creator;
    return creator;
}

class StaticRegistration
{
public:
    StaticRegistration()
    {
        nvinfer1::IPluginRegistry* registry = getPluginRegistry();
        mRegistered = registry != nullptr && registry->registerCreator(upsampleNearestCreator(), "");
        if (!mRegistered)
        {
            unetkit::plugin::logWarning(
                "libunetkit_plugins: UnetkitUpsampleNearest was not registered on load (already registered "
                "by another copy of the library?)");
        }
    }

    ~StaticRegistration()
    {
        withdraw();
    }

    StaticRegistration(StaticRegistration const&) = delete;
    StaticRegistration& operator=(StaticRegistration const&) = delete;

    void withdraw() noexcept
    {
        std::lock_guard<std::mutex> lock(mMutex);
        if (mRegistered)
        {
            if (nvinfer1::IPluginRegistry* registry = getPluginRegistry())
            {
                registry->deregisterCreator(upsampleNearestCreator());
            }
            mRegistered = false;
        }
    }

private:
    std::mutex mMutex;
    bool mRegistered{false};
};

StaticRegistration gStaticRegistration;

} // namespace

extern "C" UNETKIT_PLUGIN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    unetkit::plugin::setLoggerFinder(finder);
}

extern "C" UNETKIT_PLUGIN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    gStaticRegistration.withdraw();
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&upsampleNearestCreator()};
    nbCreators = static_cast<int32_t>(std::size(creators));
    return creators;
}
