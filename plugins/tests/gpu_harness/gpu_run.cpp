#include "gpu_run.h"

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace unetkit::harness
{
namespace
{

constexpr size_t kGuardBytes = 4096;
constexpr uint8_t kInputPoison = 0xA5;
constexpr uint8_t kOutputPoison = 0xFF;
constexpr auto kStreamHold = std::chrono::milliseconds(2);

// Device and pinned host buffers of one case, freed on every path.
struct Buffers
{
    void* input{nullptr};
    void* output{nullptr};
    void* workspace{nullptr};
    void* hostInput{nullptr};
    void* hostOutput{nullptr};
    cudaStream_t stream{nullptr};

    ~Buffers()
    {
        cudaFree(input);
        cudaFree(output);
        cudaFree(workspace);
        cudaFreeHost(hostInput);
        cudaFreeHost(hostOutput);
        if (stream != nullptr)
        {
            cudaStreamDestroy(stream);
        }
    }
};

// Holds the stream for a moment before the input is copied in: a kernel that the plugin
// launched on any other stream would run first and read the poisoned input.
void CUDART_CB holdStream(void* /* unused */)
{
    std::this_thread::sleep_for(kStreamHold);
}

bool ok(cudaError_t status, char const* call, std::string& error)
{
    if (status != cudaSuccess && error.empty())
    {
        error = std::string(call) + ": " + cudaGetErrorString(status);
    }
    return status == cudaSuccess;
}

} // namespace

bool queryDevice(DeviceInfo& info, std::string& error)
{
    int count = 0;
    if (!ok(cudaGetDeviceCount(&count), "cudaGetDeviceCount", error))
    {
        return false;
    }
    cudaDeviceProp properties{};
    if (count == 0 || !ok(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties", error))
    {
        error = error.empty() ? "no CUDA device" : error;
        return false;
    }
    info.name = properties.name;
    info.computeMajor = properties.major;
    info.computeMinor = properties.minor;
    return ok(cudaDriverGetVersion(&info.driverVersion), "cudaDriverGetVersion", error)
        && ok(cudaRuntimeGetVersion(&info.runtimeVersion), "cudaRuntimeGetVersion", error);
}

GpuResult runOnGpu(PreparedPlugin const& plugin, Case const& testCase, uint32_t seed, bool corrupt)
{
    GpuResult result;
    std::string& error = result.error;
    Combination const& combination = testCase.combination;
    size_t const bytes = elementBytes(combination.inType);
    size_t const inBytes = static_cast<size_t>(inputLayout(testCase).elements()) * bytes;
    size_t const outBytes = static_cast<size_t>(outputLayout(testCase).elements()) * bytes;
    std::vector<uint8_t> const input = randomTensor(combination.inType, inputLayout(testCase).elements(), seed);

    Buffers buffers;
    bool const allocated = ok(cudaStreamCreateWithFlags(&buffers.stream, cudaStreamNonBlocking),
                               "cudaStreamCreateWithFlags", error)
        && ok(cudaMalloc(&buffers.input, inBytes), "cudaMalloc(input)", error)
        && ok(cudaMalloc(&buffers.output, outBytes + kGuardBytes), "cudaMalloc(output)", error)
        && (plugin.workspaceBytes == 0
            || ok(cudaMalloc(&buffers.workspace, plugin.workspaceBytes), "cudaMalloc(workspace)", error))
        && ok(cudaMallocHost(&buffers.hostInput, inBytes), "cudaMallocHost(input)", error)
        && ok(cudaMallocHost(&buffers.hostOutput, outBytes + kGuardBytes), "cudaMallocHost(output)", error)
        && ok(cudaMemset(buffers.input, kInputPoison, inBytes), "cudaMemset(input)", error)
        && ok(cudaMemset(buffers.output, kOutputPoison, outBytes + kGuardBytes), "cudaMemset(output)", error)
        && ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize", error);
    if (!allocated)
    {
        return result;
    }
    std::memcpy(buffers.hostInput, input.data(), inBytes);

    nvinfer1::PluginTensorDesc const in
        = tensorDesc(combination.inType, combination.inFormat, testCase.n, testCase.c, testCase.h, testCase.w);
    nvinfer1::PluginTensorDesc const out = tensorDesc(combination.outType, combination.outFormat, testCase.n,
        testCase.c, testCase.h * testCase.scaleH, testCase.w * testCase.scaleW);
    void const* inputs[] = {buffers.input};
    void* outputs[] = {buffers.output};
    bool const queued = ok(cudaLaunchHostFunc(buffers.stream, holdStream, nullptr), "cudaLaunchHostFunc", error)
        && ok(cudaMemcpyAsync(buffers.input, buffers.hostInput, inBytes, cudaMemcpyHostToDevice, buffers.stream),
            "cudaMemcpyAsync(input)", error);
    if (!queued)
    {
        return result;
    }
    int32_t const status = plugin.enqueuer()->enqueue(&in, &out, inputs, outputs, buffers.workspace, buffers.stream);
    if (status != 0)
    {
        error = "enqueue returned " + std::to_string(status);
        cudaStreamSynchronize(buffers.stream);
        return result;
    }
    bool const finished = ok(cudaMemcpyAsync(buffers.hostOutput, buffers.output, outBytes + kGuardBytes,
                                 cudaMemcpyDeviceToHost, buffers.stream),
                              "cudaMemcpyAsync(output)", error)
        && ok(cudaStreamSynchronize(buffers.stream), "cudaStreamSynchronize", error)
        && ok(cudaGetLastError(), "cudaGetLastError", error);
    if (!finished)
    {
        return result;
    }

    std::vector<uint8_t> output(outBytes);
    std::memcpy(output.data(), buffers.hostOutput, outBytes);
    auto const* guard = static_cast<uint8_t const*>(buffers.hostOutput) + outBytes;
    for (size_t i = 0; i < kGuardBytes; ++i)
    {
        if (guard[i] != kOutputPoison)
        {
            error = "output written past its end (byte " + std::to_string(i) + " after the last element)";
            return result;
        }
    }
    if (corrupt)
    {
        output[outBytes / 2] ^= 0x01;
    }
    result.comparison = compare(testCase, input, output);
    return result;
}

} // namespace unetkit::harness
