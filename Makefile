# actbench: every command sets itself up (creates .venv, installs the project) and then runs.
#   make bench      quick benchmark of every available kernel: tables, JSON, Markdown, plots
#   make test       the test suite (numba-cuda simulator and NVRTC compile tests included)
#   make lint       ruff (rules in pyproject.toml)
#   make resources  registers / shared memory / spills of every CUDA kernel (NVRTC) -> reports/
#   make gpu-check  on a machine with an NVIDIA GPU: correctness suite + quick GPU benchmark
# EXTRAS picks the optional dependencies (default dev,torch: the torch CPU peer is measured and
# tested too); `make test EXTRAS=dev` leaves torch out where its wheel is not at hand.

comma  := ,
PYTHON ?= python3
VENV   ?= .venv
EXTRAS ?= dev,torch
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: venv bench bench-full test lint gpu-check resources clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

bench: venv
	$(PY) -m bench run --profile quick

bench-full: venv
	$(PY) -m bench run --profile full

test: venv
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .

resources: venv
	$(PY) -m kernels.nvrtc --report reports/kernels-resources.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# For a machine with an NVIDIA GPU: system python3 only (numpy, cupy, numba, numba-cuda, rich,
# scipy, pytest), nothing installed; under 5 minutes; output under $OUT or reports/gpu-check.
gpu-check:
	python3 -m bench.gpu_check
