// UnetkitUpsampleNearest: nearest-neighbour upsampling of an NCHW tensor by integer factors
// (ONNX Resize nearest/asymmetric/floor with integer scales, Keras UpSampling2D nearest).
// Plugin name "UnetkitUpsampleNearest", version "1", namespace "", attributes scale_h and
// scale_w (kINT32, >= 1). fp32 and fp16 in kLINEAR; fp16 also in kHWC8 so that TensorRT can keep
// the channels-last layout its fp16 convolutions prefer instead of reformatting around the plugin.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <vector>

namespace unetkit::plugin
{

inline constexpr char const* kUpsampleNearestName = "UnetkitUpsampleNearest";
inline constexpr char const* kUpsampleNearestVersion = "1";
inline constexpr char const* kUpsampleNearestNamespace = "";

struct UpsampleNearestParams
{
    int32_t scaleH{0};
    int32_t scaleW{0};
};

class UpsampleNearestPlugin final : public nvinfer1::IPluginV3,
                                    public nvinfer1::IPluginV3OneCore,
                                    public nvinfer1::IPluginV3OneBuild,
                                    public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit UpsampleNearestPlugin(UpsampleNearestParams params);
    UpsampleNearestPlugin(UpsampleNearestPlugin const& other);
    UpsampleNearestPlugin& operator=(UpsampleNearestPlugin const&) = delete;
    ~UpsampleNearestPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
        int32_t nbInputs, int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    UpsampleNearestParams mParams;
    std::vector<nvinfer1::PluginField> mSerializedFields;
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

class UpsampleNearestPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    UpsampleNearestPluginCreator();
    ~UpsampleNearestPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFieldNames;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

} // namespace unetkit::plugin
