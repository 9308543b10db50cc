# Symbiotic: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SYMBIOTIC_HOME ?= $(CURDIR)/.symbiotic
export DAGSTER_HOME ?= $(SYMBIOTIC_HOME)/dagster
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install run test test-fast dev bench bench-git bench-many-repos bench-embedding bench-recommend bench-search eval eval-search lint clean dbt-manifest dashboards browser bench-vectors

# torch first, pinned to the CPU build: an unpinned torch pulled by sentence-transformers
# would bring a multi-GB CUDA build (see DEVELOPERS.md).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## browser: Debian's chromium for the Dagster UI test (needs root or an existing install)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package for the UI test (sudo apt-get install chromium)"; fi; }

## dbt-manifest: parse the dbt project once (Dagster reads the manifest; never done at import)
dbt-manifest: install
	$(BIN)/python -m symbiotic_assets.analytics.project

## dashboards: regenerate grafana/dashboards/*.json from grafana/build_dashboards.py
dashboards: install
	$(BIN)/python grafana/build_dashboards.py

## run: set up, then materialize everything on the default configuration and print a summary
run: install dbt-manifest
	$(BIN)/symbiotic run

## test: set up, then run the whole suite (unit, integration, end-to-end)
test: install dbt-manifest browser
	$(BIN)/pytest -n 2 --durations=15 --cov=symbiotic_assets --cov-report=term-missing:skip-covered

test-fast: install dbt-manifest
	$(BIN)/pytest -n 2 -m "not slow"

## dev: the Dagster UI on http://127.0.0.1:3000 over the same instance `make run` uses
dev: install dbt-manifest
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || $(BIN)/python -c "from symbiotic_assets.cli import prepare_dagster_home; prepare_dagster_home()"
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## bench: every speed benchmark; each prints ratios against a baseline measured in the same run
bench: bench-git bench-embedding bench-recommend bench-search bench-many-repos

## bench-git: extraction throughput vs plain git log, conflict detection, no-op refresh
bench-git: install
	mkdir -p $(SYMBIOTIC_HOME)/bench
	$(BIN)/python -m benchmarks.bench_git --commits 1000000 --rounds 3 --cache $(SYMBIOTIC_HOME)/bench --json $(SYMBIOTIC_HOME)/bench/git.json

## bench-many-repos: marginal cost per repository of symbiotic run (first and no-op) vs git log
# on clones of this repository (SOURCE=path clones another)
bench-many-repos: install
	$(BIN)/python -m benchmarks.bench_many_repos --sizes 2 8 $(if $(SOURCE),--source $(SOURCE)) --json $(SYMBIOTIC_HOME)/bench/many-repos.json

## bench-embedding: single-issue p50/p95 and batch texts/s, ONNX variants vs sentence-transformers
bench-embedding: install
	$(BIN)/python -m benchmarks.bench_embedding

## bench-recommend: recommend_strategy p50/p95 at 100k and 1M published attempts vs the previous code, recall@64
bench-recommend: install
	$(BIN)/python -m benchmarks.bench_recommend --sizes 100000 1000000

## bench-vectors: faiss, hnswlib, usearch and the previous IVF on the same real vectors (BENCH_REPOS=clone paths)
bench-vectors: install
	$(BIN)/python -m benchmarks.bench_vectors --sizes 100000 1000000 $(foreach r,$(BENCH_REPOS),--repo $(r))

## bench-search: semantic_search p50/p95 at 100k and 1M published commits vs the previous code, recall@10/100 (BENCH_REPOS=clone paths)
bench-search: install
	$(BIN)/python -m benchmarks.bench_search --sizes 100000 1000000 $(foreach r,$(BENCH_REPOS),--repo $(r)) $(if $(BENCH_REPOS),--base 40000)

## eval: offline replay of a generated fix history; fails unless ours beats both baselines
eval: install
	$(BIN)/python -m benchmarks.replay_eval --n 6000 --seed 21 --strict

## eval-search: retrieval quality on a time-split copy of a clone with GitHub PRs: make eval-search REPO=path
eval-search: install
	@test -n "$(REPO)" || { echo "usage: make eval-search REPO=path/to/a/clone (PR-merge history)"; exit 2; }
	$(BIN)/python -m benchmarks.search_eval "$(REPO)"

lint: install
	$(BIN)/ruff check symbiotic_assets tests benchmarks grafana
	$(BIN)/ruff format --check symbiotic_assets tests benchmarks grafana
	$(BIN)/mypy symbiotic_assets benchmarks

clean:
	rm -rf .symbiotic dbt_models/target
