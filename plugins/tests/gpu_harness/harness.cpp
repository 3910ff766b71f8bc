// GPU harness of the UnetkitUpsampleNearest plugin: loads the real libunetkit_plugins.so, takes
// its creator through the exported getCreators(), and drives the plugin as TensorRT would
// (plugin_driver.h) over every type and format that supportsFormatCombination accepts, on the
// shapes and scales of cases.h, comparing every output element with a CPU reference.
// Built with nvcc and CMake against TensorRT's headers; needs no TensorRT library.
//
//   unetkit_plugin_gpu_harness --plugin libunetkit_plugins.so [--out DIR] [--no-gpu] [--inject-mismatch]
//
//   --out DIR          also write DIR/summary.json and DIR/cases.tsv (one line per case)
//   --no-gpu           every call up to enqueue, without a GPU (what CI runs)
//   --inject-mismatch  flip one output element of the first case: the run must fail
// A failing case prints the case (types, formats, shape, scale) and its first mismatching
// element; the exit status is then 1. Bad arguments: one line on stderr, exit 2.
#include "cases.h"
#include "gpu_run.h"
#include "plugin_driver.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

namespace
{

using namespace unetkit::harness;

constexpr char const* kUsage
    = "usage: unetkit_plugin_gpu_harness --plugin <libunetkit_plugins.so> [--out DIR] [--no-gpu] [--inject-mismatch]";

struct Options
{
    std::string plugin;
    std::string out;
    bool gpu{true};
    bool injectMismatch{false};
};

bool parseOptions(int argc, char** argv, Options& options, std::string& error)
{
    for (int i = 1; i < argc; ++i)
    {
        std::string const argument = argv[i];
        if ((argument == "--plugin" || argument == "--out") && i + 1 < argc)
        {
            (argument == "--plugin" ? options.plugin : options.out) = argv[++i];
        }
        else if (argument == "--no-gpu")
        {
            options.gpu = false;
        }
        else if (argument == "--inject-mismatch")
        {
            options.injectMismatch = true;
        }
        else
        {
            error = "unknown or incomplete argument '" + argument + "'; " + kUsage;
            return false;
        }
    }
    if (options.plugin.empty())
    {
        error = std::string("--plugin is required; ") + kUsage;
        return false;
    }
    if (options.injectMismatch && !options.gpu)
    {
        error = "--inject-mismatch needs the GPU run; drop --no-gpu";
        return false;
    }
    return true;
}

struct Totals
{
    int64_t cases{0};
    int64_t failed{0};
    int64_t elements{0};
    double maxAbsError{0.0};
};

std::string combinationName(Combination const& combination)
{
    return std::string(typeName(combination.inType)) + " " + formatName(combination.inFormat) + " -> "
        + typeName(combination.outType) + " " + formatName(combination.outFormat);
}

void writeSummary(std::string const& path, Options const& options, DeviceInfo const& device, Totals const& all,
    std::map<std::string, Totals> const& byCombination)
{
    std::ofstream json(path);
    json << "{\n  \"plugin\": \"" << options.plugin << "\",\n  \"gpu\": " << (options.gpu ? "true" : "false")
         << ",\n  \"device\": \"" << device.name << "\",\n  \"compute_capability\": \"" << device.computeMajor << '.'
         << device.computeMinor << "\",\n  \"cuda_driver_api\": " << device.driverVersion
         << ",\n  \"cuda_runtime\": " << device.runtimeVersion << ",\n  \"cases\": " << all.cases
         << ",\n  \"failed_cases\": " << all.failed << ",\n  \"elements_compared\": " << all.elements
         << ",\n  \"max_abs_error\": " << all.maxAbsError << ",\n  \"by_combination\": [";
    char const* separator = "\n";
    for (auto const& [name, totals] : byCombination)
    {
        json << separator << "    {\"combination\": \"" << name << "\", \"cases\": " << totals.cases
             << ", \"failed_cases\": " << totals.failed << ", \"elements_compared\": " << totals.elements
             << ", \"max_abs_error\": " << totals.maxAbsError << "}";
        separator = ",\n";
    }
    json << "\n  ]\n}\n";
}

int run(Options const& options)
{
    LoadedLibrary const library = loadLibrary(options.plugin);
    std::printf("loaded %s: one creator registered on load, withdrawn by getCreators; creator %s version %s\n",
        options.plugin.c_str(), library.creator->getPluginName(), library.creator->getPluginVersion());
    std::vector<Combination> const combinations = walkCombinations(*library.creator);
    std::printf("supportsFormatCombination accepts %zu combinations:\n", combinations.size());
    for (Combination const& combination : combinations)
    {
        std::printf("  %s\n", combinationName(combination).c_str());
    }

    DeviceInfo device;
    if (options.gpu)
    {
        std::string error;
        if (!queryDevice(device, error))
        {
            std::fprintf(stderr, "error: %s; run on a CUDA machine, or pass --no-gpu\n", error.c_str());
            return 2;
        }
        std::printf("device: %s (sm_%d%d), CUDA driver API %d, runtime %d\n", device.name.c_str(),
            device.computeMajor, device.computeMinor, device.driverVersion, device.runtimeVersion);
    }

    std::vector<Case> const cases = makeCases(combinations);
    std::ofstream tsv;
    if (!options.out.empty())
    {
        tsv.open(options.out + "/cases.tsv");
        tsv << "case\telements\tmax_abs_error\tresult\n";
    }
    Totals all;
    std::map<std::string, Totals> byCombination;
    for (size_t index = 0; index < cases.size(); ++index)
    {
        Case const& testCase = cases[index];
        PreparedPlugin const prepared = prepare(*library.creator, testCase);
        GpuResult result;
        result.error = prepared.error;
        if (result.error.empty() && options.gpu)
        {
            bool const corrupt = options.injectMismatch && index == 0;
            result = runOnGpu(prepared, testCase, static_cast<uint32_t>(index + 1), corrupt);
        }
        Comparison const& comparison = result.comparison;
        bool const failed = !result.error.empty() || comparison.mismatches > 0;
        if (failed)
        {
            std::printf("FAIL %s: %s\n", describe(testCase).c_str(),
                result.error.empty() ? (std::to_string(comparison.mismatches) + " of "
                                           + std::to_string(comparison.compared) + " elements differ; first: "
                                           + comparison.firstMismatch)
                                           .c_str()
                                     : result.error.c_str());
        }
        for (Totals* totals : {&all, &byCombination[combinationName(testCase.combination)]})
        {
            totals->cases += 1;
            totals->failed += failed ? 1 : 0;
            totals->elements += comparison.compared;
            totals->maxAbsError = std::max(totals->maxAbsError, comparison.maxAbsError);
        }
        if (tsv.is_open())
        {
            tsv << describe(testCase) << '\t' << comparison.compared << '\t' << comparison.maxAbsError << '\t'
                << (failed ? "FAIL" : (options.gpu ? "ok" : "prepared")) << '\n';
        }
    }

    for (auto const& [name, totals] : byCombination)
    {
        std::printf("%s: %lld cases, %lld failed, %lld elements compared, max |error| %g\n", name.c_str(),
            static_cast<long long>(totals.cases), static_cast<long long>(totals.failed),
            static_cast<long long>(totals.elements), totals.maxAbsError);
    }
    if (!options.out.empty())
    {
        writeSummary(options.out + "/summary.json", options, device, all, byCombination);
    }
    std::printf("%s: %lld cases, %lld failed, %lld elements compared, max |error| %g\n",
        options.gpu ? "GPU run" : "no-GPU run (enqueue skipped)", static_cast<long long>(all.cases),
        static_cast<long long>(all.failed), static_cast<long long>(all.elements), all.maxAbsError);
    return all.failed == 0 && all.cases > 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    Options options;
    std::string error;
    if (!parseOptions(argc, argv, options, error))
    {
        std::fprintf(stderr, "error: %s\n", error.c_str());
        return 2;
    }
    try
    {
        return run(options);
    }
    catch (std::exception const& failure)
    {
        std::fprintf(stderr, "error: %s\n", failure.what());
        return 2;
    }
}
