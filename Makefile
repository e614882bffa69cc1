# Two entry points: `make run` (the default pipeline end to end) and `make test`.
# Each creates the virtual environment and installs what it needs on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
INSTALLED := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist
WORKFLOW_PROFILE := --workflow-profile workflow/profiles/default
# Snakemake jobs run `python -m facetviz`: the venv's python comes first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test lint bench dataset clean

run: $(INSTALLED) dataset
	$(SNAKEMAKE) $(WORKFLOW_PROFILE) $(ARGS)

test: $(INSTALLED) dataset
	$(PY) -m pytest -q $(ARGS)

lint: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	.ci/snakemake-lint $(SNAKEMAKE) $(WORKFLOW_PROFILE)

bench: $(INSTALLED) dataset
	$(PY) bench/activations_throughput.py
	$(PY) bench/facets_clustering.py
	$(PY) bench/dag_dryrun.py
	$(PY) bench/synthesis_batching.py --steps-scale 0.25
	$(PY) bench/tv_denoise.py

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Debian's package where we are root with apt; elsewhere facetviz downloads it with torchvision.
dataset:
	@if [ -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
		echo "note: $(FASHION_MNIST) is missing and apt is not usable here; the pipeline will try a torchvision download"; \
	fi

clean:
	rm -rf results/default .snakemake
