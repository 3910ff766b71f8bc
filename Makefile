# unetkit: every command a user or CI runs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KERAS_VENV ?= .venv-keras
POLICY_VENV ?= .venv-policy
# TensorRT's public headers live outside the checkout: $TENSORRT_HEADERS, else the
# `make trt-headers` cache ($(TRT_HEADERS_CACHE)/<major.minor>/include), else
# shared/tensorrt/11.x/include beside the checkout or a folder above it (where CI's clean
# clone finds them); plugins/find_trt_headers.sh looks, the tests ask it too.
TRT_REF ?= v11.1
TRT_HEADERS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/unetkit/tensorrt
export TRT_HEADERS_CACHE
TENSORRT_HEADERS ?= $(shell plugins/find_trt_headers.sh 11)
PLUGINS_BUILD ?= plugins/build
CUDA_ARCHS ?=
# make serve: empty means the kit's defaults (127.0.0.1, gRPC 8001, HTTP 8000, metrics 8002).
HOST ?=
HTTP_PORT ?=
GRPC_PORT ?=
METRICS_PORT ?=
# make serve / make repository: your Keras model and its export flags, e.g.
#   make serve MODEL=my_unet.h5 EXPORT_ARGS="--mean 123.7 116.3 103.5 --std 58.4 57.1 57.4"
# Empty MODEL keeps the model the repository was last made from (the example at first).
# RUNTIME=openvino|onnxruntime picks the CPU engine and PRECISION=int8|bf16|fp32 the precision
# (default: the fastest engine and precision measured on this machine that passes its accuracy
# gate against fp32, calibrated on CALIBRATION, default samples/). MEMORY=4G: the server's
# memory budget (default: half the memory available at start-up). QUEUE=16: Triton refuses requests beyond 16 waiting (a queue
# policy; default none: in Triton 2.51 it delays some requests by up to 500 ms).
MODEL ?=
EXPORT_ARGS ?=
PRECISION ?=
RUNTIME ?=
CALIBRATION ?=
QUEUE ?=
MEMORY ?=
REPOSITORY ?= model_repository
# make bench-export ZOO=sm_linknet_inceptionv3: a zoo model instead of the full-width U-Net
ZOO ?=

.PHONY: help venv keras-venv policy-venv check-policy repository serve test test-unit test-models check-trt-rtx lint format bench bench-threads bench-int8 bench-memory stress bench-generator bench-tiling soak loadtest goldens zoo-models readme-layers bench-export example-model example-eval samples plugins trt-headers plugins-gpu-check plugins-harness

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# TensorRT-RTX's ONNX parser dlopens the unversioned libtensorrt_rtx.so when it adds a plugin
# layer, and the wheel ships only .so.1: the link below. A link, never a copy: a copy would be
# a second library with a second plugin registry.
# perf_analyzer, NVIDIA's load generator (make bench's reference), ships as a binary in the
# tritonclient 2.51 wheel; it links libcudart.so.12 (the CUDA runtime wheel beside it) and
# Debian's libb64-0d. Kept in its own folder: the client library pinned above is newer.
PERF_ANALYZER_PINS := tritonclient==2.51.0 nvidia-cuda-runtime-cu12==12.9.79

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[serve,loadtest,dev,trt-rtx]'
	$(BIN)/pip install --quiet --no-deps --target $(VENV)/perf-analyzer $(PERF_ANALYZER_PINS)
	ln -sf libtensorrt_rtx.so.1 "$$($(BIN)/python -c 'import importlib.util as u; \
		print(u.find_spec("tensorrt_rtx_libs").submodule_search_locations[0])')/libtensorrt_rtx.so"
	touch $@

venv: $(BIN)/.installed  ## serving/test environment in .venv (numpy<2, Triton, OpenVINO, ONNX Runtime, TensorRT-RTX, perf_analyzer)

# Keras is a development dependency only: it makes the golden outputs and trains the example.
$(KERAS_VENV)/.installed: requirements-keras.txt
	$(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_VENV)/bin/pip install --quiet --upgrade pip
	$(KERAS_VENV)/bin/pip install --quiet -r requirements-keras.txt
	$(KERAS_VENV)/bin/pip install --quiet --no-deps segmentation-models==1.0.1
	$(KERAS_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

keras-venv: $(KERAS_VENV)/.installed  ## Keras environment (TensorFlow CPU) for goldens and training

# checkov has its own environment: its dependencies pin versions the kit's .venv does not share.
$(POLICY_VENV)/.installed: requirements-policy.txt
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet --upgrade pip
	$(POLICY_VENV)/bin/pip install --quiet -r requirements-policy.txt
	touch $@

policy-venv: $(POLICY_VENV)/.installed  ## checkov (the policy checker of deploy/k8s) in .venv-policy

check-policy: policy-venv  ## checkov on the rendered gpu, cpu and loadtest overlays (make test checks its findings)
	rm -rf out/policy && mkdir -p out/policy
	for overlay in gpu cpu loadtest; do kubectl kustomize deploy/k8s/overlays/$$overlay > out/policy/$$overlay.yaml; done
	$(POLICY_VENV)/bin/checkov -d out/policy --framework kubernetes --compact --quiet || true
	@echo "failing on purpose, with the reasons: deploy/k8s/checkov-accepted.yaml"

goldens: keras-venv zoo-models  ## regenerate the converter's test models and Keras goldens (tests/keras2onnx/golden)
	nice $(KERAS_VENV)/bin/python tests/keras2onnx/golden/make_goldens.py

zoo-models: keras-venv  ## rebuild the committed zoo models (small library U-Nets, tests/keras2onnx/zoo/models)
	nice $(KERAS_VENV)/bin/python tests/keras2onnx/zoo/make_zoo.py --backend tfkeras --committed

readme-layers: venv  ## rewrite README.md's supported-layer table from the converter's registry
	$(BIN)/python -m unetkit.cli.supported_layers --write README.md

bench-export: venv keras-venv  ## conversion time and peak memory of the full-width U-Net (ZOO=name: a zoo model)
	$(BIN)/python build/bench_export.py $(if $(ZOO),--zoo $(ZOO))

samples: venv  ## regenerate samples/ (deterministic; a test checks it)
	$(BIN)/python example/make_samples.py

example-model: keras-venv  ## retrain example/unet_example.h5 (~10 min on 2 CPU cores)
	nice $(KERAS_VENV)/bin/python example/train.py

example-eval: keras-venv  ## IoU of the example model on samples/, computed by Keras
	$(KERAS_VENV)/bin/python example/evaluate.py

repository: venv  ## export MODEL (default: the last one, else the example) into $(REPOSITORY)/unet/1/
	$(BIN)/python build/make_repository.py --repository $(REPOSITORY) \
		$(if $(MODEL),--model $(MODEL)) $(if $(PRECISION),--precision $(PRECISION)) \
		$(if $(RUNTIME),--runtime $(RUNTIME)) $(if $(CALIBRATION),--calibration $(CALIBRATION)) \
		$(if $(QUEUE),--max-queue-size $(QUEUE)) $(EXPORT_ARGS)

serve: repository  ## start Triton on HOST (default 127.0.0.1), ports GRPC_PORT/HTTP_PORT/METRICS_PORT
	$(BIN)/python -m unetkit.serve --model-repository $(REPOSITORY) $(if $(HOST),--host $(HOST)) \
		$(if $(GRPC_PORT),--grpc-port $(GRPC_PORT)) $(if $(HTTP_PORT),--http-port $(HTTP_PORT)) \
		$(if $(METRICS_PORT),--metrics-port $(METRICS_PORT)) $(if $(MEMORY),--memory $(MEMORY))

test: lint keras-venv policy-venv  ## the whole test suite, against real Triton servers (what CI runs)
	$(BIN)/python -m pytest

test-unit: venv policy-venv  ## the fast inner loop: every test that needs no server and no Keras (about a minute)
	$(BIN)/python -m pytest tests --ignore=tests/e2e -q -m "not zoo_cache"

test-models: venv keras-venv  ## every zoo model in every format its library saves (builds into ~/.cache/unetkit/zoo)
	UNETKIT_ZOO=all $(BIN)/python -m pytest tests/keras2onnx/zoo -q -rfE

check-trt-rtx: venv  ## the kit's engine build on TensorRT-RTX, no GPU (plugin route where TensorRT 11 headers are)
	$(BIN)/python -m pytest tests -m trt_rtx -v

bench: venv  ## every CPU engine in-process and served, perf_analyzer beside Locust (BENCHMARKS.md)
	$(BIN)/python loadtest/bench.py

bench-threads: venv  ## OpenVINO served as 2 instances x all cores, 1 x all cores, 2 x 1 thread; its hints
	$(BIN)/python loadtest/bench_threads.py

bench-int8: venv  ## int8 schemes (QDQ/QOperator, per-channel/per-tensor): speed and accuracy against fp32
	$(BIN)/python loadtest/bench_int8.py

bench-memory: venv  ## ONNX Runtime's peak and leftover memory with and without its arena and pattern
	$(BIN)/python loadtest/bench_memory.py

stress: repository  ## 32 clients x 2048x2048 for 60 s against make serve's server (BENCHMARKS.md)
	$(BIN)/python loadtest/stress.py

bench-generator: venv  ## Locust against perf_analyzer on the echo model: each generator's own time per request
	$(BIN)/python loadtest/bench_generator.py

bench-tiling: repository  ## client/segment.py on an 8192x8192 image vs Locust sending its tiles; memory on 20000x20000
	$(BIN)/python loadtest/bench_tiling.py

soak: repository  ## 10 minutes at the saturating load: failures, memory growth, p99 drift
	$(BIN)/python loadtest/soak.py

loadtest: venv  ## Locust, headless, against a running `make serve`
	$(BIN)/locust -f loadtest/locustfile.py --config loadtest/locust.conf

lint: venv  ## ruff check and format check; the package boundaries (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

trt-headers:  ## TensorRT's public headers (TRT_REF) into $(TRT_HEADERS_CACHE)/<major.minor>, outside the checkout
	TRT_HEADERS_CACHE='$(TRT_HEADERS_CACHE)' plugins/fetch_trt_headers.sh $(TRT_REF)

plugins:  ## CUDA kernels, plus libunetkit_plugins.so where TensorRT headers are found
	cmake -S plugins -B $(PLUGINS_BUILD) $(if $(CUDA_ARCHS),-DCMAKE_CUDA_ARCHITECTURES='$(CUDA_ARCHS)') \
		$(if $(TENSORRT_ROOT),-DTENSORRT_ROOT=$(TENSORRT_ROOT)) -DTENSORRT_HEADERS='$(TENSORRT_HEADERS)' \
		$(if $(TENSORRT_LIBRARY),-DTensorRT_LIBRARY='$(TENSORRT_LIBRARY)')
	cmake --build $(PLUGINS_BUILD) -j

plugins-gpu-check:  ## on a CUDA machine with PyTorch: kernel exactness and bandwidth into out/plugins-gpu
	plugins/tests/run_gpu.sh out/plugins-gpu

plugins-harness:  ## on a CUDA machine: the plugin driven as TensorRT does, every element checked, under compute-sanitizer too (out/plugins-harness)
	TENSORRT_HEADERS='$(TENSORRT_HEADERS)' plugins/tests/run_harness.sh out/plugins-harness
