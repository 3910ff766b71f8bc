# The CPU route as a container image (deploy/k8s/overlays/cpu, and the Locust pods of
# deploy/k8s/overlays/loadtest): Triton 2.51 from the nvidia-pytriton wheel with the python
# backend, OpenVINO and ONNX Runtime, the kit, and the model repository built into the image.
#
#   docker build -f docker/cpu.Dockerfile -t unetkit-cpu:0.1.0 .
#   docker build -f docker/cpu.Dockerfile --build-arg MODEL=models/my_unet.h5 \
#       --build-arg EXPORT_ARGS="--mean 123.675 116.28 103.53 --std 58.395 57.12 57.375" ...
#
# Debian 12: the wheel's tritonserver needs glibc 2.35 or newer (its manylinux_2_35 tag) and
# the python backend stub links libpython3.11.so, which the python images ship.
FROM python:3.11-slim-bookworm

# The pins of pyproject.toml: the core, `serve` and `loadtest` extras (a test compares them).
RUN python3 -m pip install --no-cache-dir \
        numpy==1.26.4 h5py==3.16.0 onnx==1.23.2 \
        nvidia-pytriton==0.7.0 onnxruntime==1.32.0 openvino==2026.4.1 \
        "tritonclient[grpc]==2.73.0" pillow==13.0.0 \
        tifffile==2026.3.3 tqdm==4.70.1 \
        locust==2.47.0 hdrhistogram==0.10.8 \
    && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin unetkit

WORKDIR /opt/unetkit
COPY . /opt/unetkit
ENV PYTHONPATH=/opt/unetkit

# The model, exported once at image build time as `make repository` exports it: every pod
# serves the same files. The engine is the fastest measured on the machine that builds the
# image; where the nodes' CPUs differ from it, pin one (RUNTIME=openvino or onnxruntime,
# PRECISION=int8, bf16 or fp32). MODEL: a Keras file inside the build context; empty = the
# example model.
ARG MODEL=""
ARG EXPORT_ARGS=""
ARG PRECISION=""
ARG RUNTIME=""
# hadolint ignore=SC2086
RUN python3 build/make_repository.py --repository model_repository \
        ${MODEL:+--model "$MODEL"} ${PRECISION:+--precision "$PRECISION"} \
        ${RUNTIME:+--runtime "$RUNTIME"} $EXPORT_ARGS

USER 10001:10001

EXPOSE 8000 8001 8002
# Listens on the pod's address: the Kubernetes Services in front are ClusterIP only.
# Admin APIs: UNETKIT_ADMIN_KEY (a Secret in deploy/k8s). `docker run` publishes nothing
# unless you pass -p.
ENTRYPOINT ["python3", "-m", "unetkit.serve", "--model-repository", "model_repository", "--host", "0.0.0.0"]
