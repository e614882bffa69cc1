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

# The run whose report `make run` writes: set RUN to the config's `run` when ARGS picks another.
RUN ?= default

.PHONY: run test lint bench dataset browser clean

# The pipeline, then Snakemake's report of it (figures with captions, provenance, runtimes).
run: $(INSTALLED) dataset
	$(SNAKEMAKE) $(WORKFLOW_PROFILE) $(ARGS)
	$(SNAKEMAKE) $(WORKFLOW_PROFILE) $(ARGS) --report results/$(RUN)/report.html

test: $(INSTALLED) dataset browser
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
	$(PY) bench/learned_priors.py --repeats 3
	$(PY) bench/sae.py
	$(PY) bench/generator_code_layers.py

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Debian's packages where we are root with apt; elsewhere say what happens without them.
APT_INSTALL = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's $(1)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	else echo "note: $(1) is missing and apt is not usable here: $(2)"; fi

dataset:
	@test -f $(FASHION_MNIST)/train-images-idx3-ubyte.gz || { \
		$(call APT_INSTALL,dataset-fashion-mnist,the pipeline will try a torchvision download); }

# The browser test loads results/<run>/index.html in headless Chromium.
browser:
	@command -v chromium >/dev/null || { \
		$(call APT_INSTALL,chromium,the browser test fails (pytest -m 'not browser' leaves it out)); }

clean:
	rm -rf results/default .snakemake
