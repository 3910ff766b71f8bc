# Images of the GPU route on Kubernetes (deploy/k8s): the build Job's and Triton's, both
# from ONE TensorRT/Triton release tag, so the plan, the plugin and the server that loads
# them always come from the same release. Unlike docker/build.Dockerfile (compose mounts the
# checkout), the kit is copied in: a cluster has no checkout to mount.
#
#   docker build -f docker/k8s-gpu.Dockerfile --build-arg TRT_TAG=26.10 --target build \
#       -t REGISTRY/unetkit-build:26.10 .
#   docker build -f docker/k8s-gpu.Dockerfile --build-arg TRT_TAG=26.10 --target triton \
#       -t REGISTRY/unetkit-triton:26.10 .
ARG TRT_TAG=26.10

# The build Job: NVIDIA's TensorRT container + the kit's pinned build-side packages (the
# same list as docker/build.Dockerfile) + the repository (plugin sources, converter, model).
FROM nvcr.io/nvidia/tensorrt:${TRT_TAG}-py3 AS build
RUN PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir \
        h5py==3.16.0 onnx==1.23.2 onnxruntime==1.32.0 pillow==13.0.0 \
        polygraphy==0.53.6 cmake==4.4.4
WORKDIR /opt/unetkit
COPY . /opt/unetkit
ENV PYTHONPATH=/opt/unetkit
# NVIDIA's entry point first (CUDA forward compatibility on older data-center drivers).
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "python3", "-m", "unetkit.cli.build_service"]

# Triton: NVIDIA's Triton container of the same tag + the kit's Python package, which checks
# the plan and starts tritonserver (standard library only: nothing to install).
FROM nvcr.io/nvidia/tritonserver:${TRT_TAG}-py3 AS triton
WORKDIR /opt/unetkit
COPY unetkit /opt/unetkit/unetkit
ENV PYTHONPATH=/opt/unetkit
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "python3", "-m", "unetkit.cli.triton_service"]
