# Image of the compose `loadtest` service: plain Python with Locust and Triton's gRPC
# client, the same pins as pyproject.toml. No GPU and no Triton inside: it only sends load.
# The repository is mounted at /opt/unetkit at run time.
FROM python:3.11-slim

RUN python3 -m pip install --no-cache-dir \
        numpy==1.26.4 h5py==3.16.0 onnx==1.23.2 pillow==13.0.0 \
        "tritonclient[grpc]==2.73.0" locust==2.47.0 hdrhistogram==0.10.8

ENV PYTHONPATH=/opt/unetkit
WORKDIR /opt/unetkit
ENTRYPOINT ["locust", "-f", "loadtest/locustfile.py", "--config", "loadtest/locust.conf"]
