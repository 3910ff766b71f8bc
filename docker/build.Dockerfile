# Image of the compose `build` service: NVIDIA's TensorRT container (TensorRT, CUDA, the
# compiler and the TensorRT Python bindings) plus the kit's pinned build-side packages.
# The repository itself is mounted at /opt/unetkit at run time, not copied in.
ARG TRT_TAG
FROM nvcr.io/nvidia/tensorrt:${TRT_TAG}-py3

# h5py/onnx: the converter; onnxruntime: the reference the engine is checked against;
# pillow: the sample images; polygraphy: device buffers for running the engine;
# cmake: a CMake recent enough for CMAKE_CUDA_ARCHITECTURES=native. The image's own numpy
# stays: the numpy<2 pin belongs to the CPU route's python backend stub, not to this build.
RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir \
        h5py==3.16.0 onnx==1.23.2 onnxruntime==1.32.0 pillow==13.0.0 \
        polygraphy==0.53.6 cmake==4.4.4

ENV PYTHONPATH=/opt/unetkit
WORKDIR /opt/unetkit
# NVIDIA's entry point first: it enables CUDA forward compatibility on older data-center
# drivers, prints the container banner and driver checks, then runs `exec "$@"`. Then the
# build runs as the owner of the mounted checkout (docker/run_as_owner.sh), so the plugin
# build folder, the timing caches and the plan it writes there are the host user's, not root's.
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "/opt/unetkit/docker/run_as_owner.sh", "python3", "-m", "unetkit.cli.build_service"]
