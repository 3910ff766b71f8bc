"""unetkit: a Keras U-Net served by NVIDIA Triton Inference Server with TensorRT.

core        the I/O contract, size rule, model description, profile, samples, errors, files
keras2onnx  Keras .h5/.keras -> ONNX with the contract (no TensorFlow)
tensorrt    the TensorRT plan: rewrites, build, accuracy gate, build report, plan check
triton      the Triton server, its model configurations and repository
loadgen     Locust load generation and measurement
cli         the commands, composing the packages above
"""
