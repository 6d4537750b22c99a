# hwnas — every target creates the virtual environment it needs.
SHELL := /bin/bash
PY_SYS ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_PIN ?= torch==2.13.0
# Read by hwnas.hardware.device_data (PINNED there too): make bench-device, the fitted Snapdragon options.
DEVICE_DATA_PINS ?= qai-hub-models==0.65.0 torchvision==0.28.0 timm==1.0.31
export WANDB_MODE ?= offline
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: the CPU wheel; a bare `torch` would pull a multi-GB CUDA build.
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[dev]'
	# Qualcomm's published device latencies (qai-hub-models) and torchvision's and timm's model builders, as
	# data in a folder of their own and --no-deps: they pin torch ranges that would replace the CPU torch.
	$(PIP) install -q --no-deps --upgrade --target $(VENV)/device-data $(DEVICE_DATA_PINS)
	touch $@

install: $(VENV)/.installed ## Create .venv and install hwnas with dev extras (torch pinned first)

search: install ## Run the main job: a small hardware-aware Pareto search on synthetic faces
	$(PY) src/search.py $(ARGS)

final: install ## Final stage alone on a finished search: make final RUN=outputs/search/<run> [ARGS="final.top_k=5"]
	$(PY) src/final.py run=$(RUN) $(ARGS)

dashboard: install ## optuna-dashboard on a run's study, on 127.0.0.1: make dashboard RUN=outputs/search/<run> [PORT=8080]
	@test -n "$(RUN)" || { echo "make dashboard RUN=<run dir>: the search's run dir, e.g. outputs/search/<time>" >&2; exit 2; }
	$(PY) -m hwnas.reporting.dashboard $(RUN) --port $(or $(PORT),8080)

train: install ## Train the baseline architecture at mini scale, export ONNX
	$(PY) src/train.py $(ARGS)

profile: install ## Profile one architecture on a hardware target (hardware=..., arch=...)
	$(PY) src/profile.py $(ARGS)

latency-table: install ## Build a latency table for a target (ARGS="hardware=cpu_int8 table.n=100")
	$(PY) src/profile.py table.n=50 $(ARGS)

test: install ## Fast test tier (unit + contracts + quick integration); slow tests deselected
	$(PY) -m pytest -q -m "not slow" $(ARGS)

test-long: install ## Long-training survival (slow tier): kill -9 mid-supernet then resume; Slurm SIGTERM -> requeue -> resume (needs make services)
	$(PY) -m pytest -q -m slow tests/integration/test_long_training.py \
		tests/integration/test_slurm.py::test_a_slurm_job_sent_sigterm_mid_training_is_requeued_and_resumes_its_checkpoint $(ARGS)

test-full: install ## Every test, including slow end-to-end searches
	$(PY) -m pytest -q $(ARGS)

docs: install ## Build the docs site (docs/, Sphinx + MyST) and serve it on http://127.0.0.1:8000/ [PORT=8000]
	$(PY) -m sphinx -q -b html docs docs/_build/html
	$(PY) -m http.server --bind 127.0.0.1 --directory docs/_build/html $(or $(PORT),8000)

docs-check: install ## Strict docs build (a warning or a broken link fails), as the test tier runs it
	$(PY) -m sphinx -W --keep-going -E -q -b html docs docs/_build/html

config-reference: install ## Regenerate docs/reference/config.md from the comments in conf/ (a test checks it is in sync)
	$(PY) -m hwnas.utils.config_reference

export HWNAS_SERVICES_DIR ?= /tmp/hwnas-services
services: install ## PostgreSQL + one-node Slurm for the storage/launcher tests, Chromium for the report test (root; apt-installs what is missing), then: source /tmp/hwnas-services/env
	$(PIP) install -q -e '.[dev,postgres]'
	bash tests/services.sh install
	bash tests/services.sh start

services-stop: ## Stop what `make services` started
	bash tests/services.sh stop

bench-profile: install ## Benchmark profilers: repeatability, time per candidate, estimate-vs-measured rank agreement
	$(PY) bench/bench_profile.py $(ARGS)

bench-proxy: install ## Benchmark the search's accuracy proxy against full training (Kendall tau, Spearman rho, front kept)
	$(PY) bench/bench_proxy.py $(ARGS)

bench-supernet: install ## Benchmark weight sharing (evaluator=supernet) against full training, beside the partial-training proxy
	$(PY) bench/bench_proxy.py --proxies default,supernet,supernet@evaluator.kernel_mode=separate --finetune 3 $(ARGS)

bench-face: install ## Face task: strategy x evaluator x seed, fully trained final fronts vs the baseline (HV, beats it, seconds; resumable)
	$(PY) bench/bench_face.py $(ARGS)

bench-device: install ## Offline Hexagon estimate vs Qualcomm's published latencies (families held out; Spearman, MdAPE, ±20 %)
	$(PY) bench/bench_device.py $(ARGS)

bench-layers: install ## Per-layer vs whole-model fits on kept AI Hub profiles (ARGS="--profiles DIR", or --synthetic)
	$(PY) bench/bench_layers.py $(ARGS)

collect-profiles: install ## Opt-in, needs an AI Hub token: profile the device zoo on a phone, keep per-layer times (ARGS='--device "Samsung Galaxy S24"')
	$(PY) bench/collect_profiles.py $(ARGS)

bench-search: install ## Benchmark strategies on NAS-Bench-201 ground truth (HV ratio, IGD+, front recall)
	$(PY) bench/bench_search.py $(ARGS)

bench-workers: install ## Latency of a search with search.n_workers=2 vs the same architectures measured alone (quiet machine)
	$(PY) bench/bench_workers.py $(ARGS)

# The GPU check's machine has Python 3.12 with torch, Lightning, onnx and onnxruntime but no network: these
# wheels (the rest of hwnas's dependencies, never torch) travel with the repo and install offline there.
GPU_WHEELS ?= .gpu-wheels
GPU_PKGS := hydra-core==1.3.8 omegaconf==2.3.1 optuna==5.1.0 alembic==1.20.1 SQLAlchemy==2.1.9 greenlet \
	colorlog==6.12.0 Mako==1.4.3 MarkupSafe==3.0.4 PyYAML==6.0.4 tqdm==4.70.1 pandas==3.1.1 python-dateutil==2.9.0.post0 \
	tzdata six==1.17.0 matplotlib==3.11.2 contourpy==1.3.3 cycler==0.12.1 fonttools==4.68.0 kiwisolver==1.5.1 \
	pyparsing==3.3.3 networkx==3.6.1 Markdown==3.11.3 pillow==13.0.0 onnxscript==0.7.2 onnx-ir==1.1.0 \
	ml_dtypes==0.7.0 typing_extensions==4.16.0 packaging==26.4 torchmetrics==1.9.0 lightning-utilities==0.15.3
gpu-wheels: install ## Python 3.12 wheels for bench/gpu_check.sh (hydra, optuna, pandas, ...; not torch) into .gpu-wheels/
	$(PIP) wheel -q --no-deps -w $(GPU_WHEELS) antlr4-python3-runtime==4.9.3  # an sdist: built here, pure Python
	$(PIP) download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d $(GPU_WHEELS) $(GPU_PKGS)
	@du -sh $(GPU_WHEELS)

gpu-check: ## The GPU check (bench/gpu_check.sh, <= 4 min): on a machine with CUDA, after make gpu-wheels
	bash bench/gpu_check.sh

bench-latency-loss: install ## Gradient strategies' latency losses: finalized latency vs target, none's weight, accuracy cost (mini mode)
	$(PY) bench/bench_latency_loss.py $(ARGS)

bench-bn-calibration: install ## Weight sharing: does BatchNorm re-estimation on more images change the supernet's ranking?
	$(PY) bench/bench_bn_calibration.py $(ARGS)

bench-predictor: install ## Benchmark hardware=predictor on NB201: each latency column as an unseen device, vs FLOPs/params/roofline
	$(PY) bench/bench_predictor.py $(ARGS)

lint: install ## ruff lint + format check
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: install ## ruff format + autofix
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

clean: ## Remove run outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache .ruff_cache lightning_logs

.PHONY: help install test-long docs docs-check config-reference search final dashboard train profile latency-table test test-full services services-stop bench-profile bench-proxy bench-supernet bench-search bench-device bench-layers collect-profiles bench-predictor bench-latency-loss bench-bn-calibration lint format clean
