# Two entry points for a fresh machine: `make bench` and `make test` (see README.md).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= results/quick
BENCH_OUT ?= results/bench
WORKERS ?= $(shell nproc)

.PHONY: install bench plots test lint check speed smoke clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# a fresh run of the quick preset into results/bench (rerunning resumes it); the stored results/quick
# stay as committed: copy results/bench over them to update the stored results.
bench: $(STAMP)
	$(BIN)/awac-bench data prepare --preset quick --workers $(WORKERS)
	$(BIN)/awac-bench sweep --preset quick --out $(BENCH_OUT) --workers $(WORKERS)
	$(BIN)/awac-bench plots $(BENCH_OUT)

plots: $(STAMP)
	$(BIN)/awac-bench plots $(OUT)

smoke: $(STAMP)
	$(BIN)/awac-bench sweep --preset smoke --out results/smoke --workers $(WORKERS)

# The two Ray tests run in processes of their own: a second ray.init after ray.shutdown in one process can
# leave Ray's background threads pointing at freed state (ray-project/ray#31145), and one clean-clone CI run
# died with a segmentation fault after all tests had passed. PYTHONFAULTHANDLER prints the stack of any crash.
test: $(STAMP)
	PYTHONFAULTHANDLER=1 $(BIN)/pytest --ignore=tests/test_ray.py
	PYTHONFAULTHANDLER=1 $(BIN)/pytest tests/test_ray.py -k TestLocalInstance
	PYTHONFAULTHANDLER=1 $(BIN)/pytest tests/test_ray.py -k TestTwoNodeCluster

lint: $(STAMP)
	$(BIN)/ruff check .

# regression check against benchmarks/check_reference.json (scores, speed, determinism; about 7 min on 2 cores)
check: $(STAMP)
	$(BIN)/awac-bench check --out results/check --workers $(WORKERS) $(if $(CI),--no-progress,)

speed: $(STAMP)
	$(BIN)/pytest benchmarks_speed --benchmark-enable --benchmark-only -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
