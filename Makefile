# actbench: every command sets itself up (creates .venv, installs the project) and then runs.
#   make bench      quick benchmark of every available kernel: tables, JSON, Markdown, plots
#   make test       the test suite (numba-cuda simulator and NVRTC compile tests included)
#   make accuracy   max error in ULPs of sigmoid and tanh per CPU backend (every 16th float32, a float64 sample)
#   make lint       ruff, the architecture check (import-linter) and actionlint (rules in pyproject.toml)
#   make resources  registers / shared memory / spills of every CUDA kernel (NVRTC) -> reports/
#   make gpu-check  on a machine with an NVIDIA GPU: correctness suite + quick GPU benchmark
#   make claims     nine ReLU-vs-sigmoid claims measured and judged -> reports/results/claims.md (+ .json,
#                   plots); quick profile (at most 2 min on 2 cores); make claims-full for the full one;
#                   CLAIMS_ARGS=--committed refreshes the committed reports/claims.* instead
# Regression tracking (README, "Regression tracking"):
#   make compare [BASE=a.json NEW=b.json]  verdict per case (default: the two newest runs); exit 1 if slower
#   make baseline      this machine's quick run -> reports/baselines/<cpu-cores-gpu>.json
#   make bench-check   quick run vs that baseline, history + plots; exit 1 on a significant slowdown
#   make bench-ab BASE=<git ref>  a pull request's gate: BASE and the working tree measured side by
#                      side in alternating runs, judged pair by pair (AB_ARGS: more `bench ab` flags)
#   make bench-pytest  pytest-benchmark suites (tests/benchmarks), saved under .benchmarks/
#   make bench-pytest-compare  the same, side by side with the last saved run: a look, not a gate (its
#                      median +15 % rule failed 14 of 36 cases of an A/A pair on a busy machine;
#                      bench-ab and bench-check are the gates, with a test on the samples)
#   make mutate        mutation testing of the verdict layer (mutmut, 7-14 min on 2 shared cores; not in make test or CI):
#                      kill rate and the survivors judged equivalent in docs/mutation.md
# EXTRAS picks the optional dependencies (default dev,torch: the torch CPU peer is measured and
# tested too); `make test EXTRAS=dev` leaves torch out where its wheel is not at hand; `EXTRAS=`
# (empty) installs the project alone, all `make bench` needs (the CPU workflow's choice).

comma  := ,
PYTHON ?= python3
VENV   ?= .venv
EXTRAS ?= dev,torch
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: venv bench bench-full accuracy test lint gpu-check resources clean compare baseline bench-check bench-pytest bench-pytest-compare claims claims-full mutate

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".$(if $(EXTRAS),[$(EXTRAS)])"
	@touch $@

bench: venv
	$(PY) -m bench run --profile quick

bench-full: venv
	$(PY) -m bench run --profile full

accuracy: venv
	$(PY) -m bench.analysis.accuracy

test: venv
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports  # the architecture: each folder imports only those below it, no circle (pyproject.toml)
	$(VENV)/bin/actionlint   # the workflows in .github/ (settings: .github/actionlint.yaml)

claims: venv
	$(PY) -m bench claims --quick $(CLAIMS_ARGS)

claims-full: venv
	$(PY) -m bench claims $(CLAIMS_ARGS)

resources: venv
	$(PY) -m kernels.nvrtc.resources --report reports/kernels-resources.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# For a machine with an NVIDIA GPU: system python3 only (numpy, cupy, numba, numba-cuda, rich,
# scipy, pytest), nothing installed; under 5 minutes; output under $OUT or reports/gpu-check.
gpu-check:
	python3 -m bench.cli.gpu_check

# ---------------------------------------------------------------------------- regression tracking
# Newest two runs under reports/results unless BASE / NEW are given.
RUNS := $(shell ls -t reports/results/*.json 2>/dev/null)
NEW  ?= $(word 1,$(RUNS))
BASE ?= $(word 2,$(RUNS))
CHECK_ARGS ?=

compare: venv
	@test -n "$(BASE)" -a -n "$(NEW)" || { echo "error: make compare needs two runs: BASE=a.json NEW=b.json (or two runs in reports/results)" >&2; exit 2; }
	$(PY) -m bench compare "$(BASE)" "$(NEW)"

baseline: venv
	$(PY) -m bench.cli.check baseline $(CHECK_ARGS)

bench-check: venv
	$(PY) -m bench.cli.check check $(CHECK_ARGS)

# BASE must be given here: make compare's BASE defaults to a results file
.PHONY: bench-ab
AB_ARGS ?=
bench-ab: venv
	@test "$(origin BASE)" = "command line" || { echo "error: make bench-ab needs a git ref: make bench-ab BASE=origin/main" >&2; exit 2; }
	$(PY) -m bench ab "$(BASE)" $(AB_ARGS)

bench-pytest: venv
	$(PY) -m pytest -q tests/benchmarks --benchmark-only --benchmark-autosave

bench-pytest-compare: venv
	@$(PY) -m bench.analysis.pytest_saved    # a saved run to compare with, before a minute of measuring
	$(PY) -m pytest -q tests/benchmarks --benchmark-only --benchmark-compare

# ---------------------------------------------------------------------------- mutation testing
# mutmut (settings in setup.cfg) copies bench/ into mutants/ with every mutant behind a switch and
# runs, for each mutant, only the tests that reached its function. Only the mutants of the verdict
# layer's functions run (MUTATE_FUNCS, mutmut's names: module.x_<function>, module.x?<Class>?<method>);
# docs/mutation.md says why those, and lists the survivors. Installed here, not in pyproject.toml:
# no test needs it.
MUTMUT := mutmut==3.8.1
MUTATE_FUNCS := 'bench.model.stats.*' \
	'bench.analysis.compare.x_case_key__*' 'bench.analysis.compare.x_from_run__*' 'bench.analysis.compare.x__positive__*' \
	'bench.analysis.compare.x_judge__*' 'bench.analysis.compare.x_median_scaled__*' 'bench.analysis.compare.x_compare_runs__*' \
	'bench.analysis.compare.x_parse_threshold__*' 'bench.analysis.compare.x?Report?*' 'bench.analysis.compare.x__gmean__*' \
	'bench.analysis.history.x_confirm__*' 'bench.analysis.history.x__cost__*' 'bench.analysis.history.x__case__*' \
	'bench.cli.check.x_check__*' 'bench.analysis.history.x_next_baseline__*' \
	'bench.measure.interleave.x_round_robin__*' \
	'bench.measure.check.x_atol__*' 'bench.measure.check.x__compare_values__*' 'bench.measure.check.x_sample_indices__*' \
	'bench.measure.check.x__elementwise__*' 'bench.measure.check.x_compare__*' 'bench.measure.check.x__unwritten__*' \
	'bench.measure.check.x_check_call__*' 'bench.measure.check.x?CheckResult?*' 'bench.measure.check.x?Scratch?poison__*' \
	'bench.model.results.x_peak_for__*' 'bench.model.results.x_derive__*' 'bench.model.results.x_ratio__*' \
	'bench.measure.roofline.x_traffic__*' 'bench.measure.roofline.x_bytes_per_element__*' 'bench.measure.roofline.x_flops__*' \
	'bench.measure.roofline.x_matmul_traffic__*' 'bench.measure.roofline.x_matmul_flops__*' 'bench.measure.roofline.x__fastest__*' \
	'bench.measure.roofline.x_cache_boundary__*' 'bench.measure.roofline.x_gpu_copy_peak__*' \
	'bench.run.runner.x__beyond_cache__*' 'bench.run.runner.x__combine_peaks__*'

mutate: venv
	$(PY) -m pip install --quiet "$(MUTMUT)"
	rm -rf mutants
	NUMBA_ENABLE_CUDASIM=1 nice -n 15 $(PY) -m mutmut run --max-children 2 $(MUTATE_FUNCS) > mutants.log 2>&1 \
		|| { tail -c 3000 mutants.log; exit 1; }
	$(PY) -m mutmut results --all true | awk -F': ' '/__mutmut_/ && $$2 != "not checked" { n++; c[$$2]++ } \
		END { for (s in c) printf "%-12s %d\n", s, c[s]; \
		      printf "kill rate: %.1f %% of %d mutants (killed + timeout)\n", 100 * (c["killed"] + c["timeout"]) / n, n }'
	@echo "survivors: $(PY) -m mutmut results; one diff: $(PY) -m mutmut show NAME"
