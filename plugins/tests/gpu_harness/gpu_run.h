// One case on the GPU: cudaMalloc'd buffers, the plugin's enqueue on a CUDA stream of its own,
// the output copied back and compared with the CPU reference.
#pragma once

#include "cases.h"
#include "plugin_driver.h"

#include <string>

namespace unetkit::harness
{

struct DeviceInfo
{
    std::string name;
    int computeMajor{0};
    int computeMinor{0};
    int driverVersion{0};  // cudaDriverGetVersion: 13000 is CUDA 13.0
    int runtimeVersion{0}; // cudaRuntimeGetVersion (the static runtime linked in)
};

// The current device, or an error message when there is none.
bool queryDevice(DeviceInfo& info, std::string& error);

struct GpuResult
{
    Comparison comparison;
    std::string error; // a CUDA call or enqueue that failed, or output written past its end
};

// `corrupt`: flip one element of the copied-back output before the comparison (the harness's
// own check that a wrong element is caught and reported).
GpuResult runOnGpu(PreparedPlugin const& plugin, Case const& testCase, uint32_t seed, bool corrupt);

} // namespace unetkit::harness
