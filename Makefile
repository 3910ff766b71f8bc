# unetkit: every command a user or CI runs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
KERAS_VENV ?= .venv-keras
TRT_REF ?= v11.1
PLUGINS_BUILD ?= plugins/build
CUDA_ARCHS ?=
HOST ?= 127.0.0.1
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002

.PHONY: help venv keras-venv repository serve test lint format bench bench-generator soak loadtest goldens bench-export example-model example-eval samples plugins trt-headers plugins-gpu-check

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[serve,loadtest,dev]'
	touch $@

venv: $(BIN)/.installed  ## serving/test environment in .venv (numpy<2, Triton, ONNX Runtime)

# Keras is a development dependency only: it makes the golden outputs and trains the example.
$(KERAS_VENV)/.installed:
	$(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_VENV)/bin/pip install --quiet --upgrade pip
	$(KERAS_VENV)/bin/pip install --quiet tensorflow-cpu==2.21.0 tf-keras==2.21.0 h5py pillow scipy
	$(KERAS_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

keras-venv: $(KERAS_VENV)/.installed  ## Keras environment (TensorFlow CPU) for goldens and training

goldens: keras-venv  ## regenerate the converter's test models and Keras goldens (tests/golden)
	nice $(KERAS_VENV)/bin/python tests/golden/make_goldens.py

bench-export: venv keras-venv  ## conversion time and peak memory of the full-width U-Net
	$(BIN)/python build/bench_export.py

samples: venv  ## regenerate samples/ (deterministic; a test checks it)
	$(BIN)/python example/make_samples.py

example-model: keras-venv  ## retrain example/unet_example.h5 (~10 min on 2 CPU cores)
	nice $(KERAS_VENV)/bin/python example/train.py

example-eval: keras-venv  ## IoU of the example model on samples/, computed by Keras
	$(KERAS_VENV)/bin/python example/evaluate.py

repository: venv  ## export the example model into model_repository/unet/1/model.onnx
	$(BIN)/python build/make_repository.py

serve: repository  ## start Triton on $(HOST) (gRPC $(GRPC_PORT), HTTP $(HTTP_PORT), metrics $(METRICS_PORT))
	$(BIN)/python -m unetkit.serve --host $(HOST) --grpc-port $(GRPC_PORT) \
		--http-port $(HTTP_PORT) --metrics-port $(METRICS_PORT)

test: lint repository  ## the whole test suite, against a real Triton server
	$(BIN)/python -m pytest

bench: repository  ## served vs in-process throughput, latency and server split (BENCHMARKS.md)
	$(BIN)/python loadtest/bench.py

bench-generator: venv  ## how many requests/s one Locust process drives (echo model)
	$(BIN)/python loadtest/bench.py --repository loadtest/repository --model-name null \
		--config-name '' --validate-fraction 0 --concurrency 4,8,16 --max-step-s 30 \
		--warmup-s 5 --output loadtest/reports/bench_generator.md

soak: repository  ## 10 minutes at the saturating load: failures, memory growth, p99 drift
	$(BIN)/python loadtest/soak.py

loadtest: venv  ## Locust, headless, against a running `make serve`
	$(BIN)/locust -f loadtest/locustfile.py --config loadtest/locust.conf

lint: venv  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

trt-headers:  ## TensorRT's public headers into plugins/third_party/tensorrt (git-ignored)
	plugins/fetch_trt_headers.sh $(TRT_REF)

plugins:  ## CUDA kernels, plus libunetkit_plugins.so where TensorRT headers are found
	cmake -S plugins -B $(PLUGINS_BUILD) $(if $(CUDA_ARCHS),-DCMAKE_CUDA_ARCHITECTURES='$(CUDA_ARCHS)') \
		$(if $(TENSORRT_ROOT),-DTENSORRT_ROOT=$(TENSORRT_ROOT))
	cmake --build $(PLUGINS_BUILD) -j

plugins-gpu-check:  ## on a CUDA machine with PyTorch: kernel exactness and bandwidth into out/plugins-gpu
	plugins/tests/run_gpu.sh out/plugins-gpu
