# Everything runs in a local virtualenv that this Makefile creates from the lock file,
# so a fresh clone needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
UV_VERSION := 0.13.8
RECIPE ?= card-transactions
N      ?= 1000
SEED   ?= 7
OUT    ?= out/$(RECIPE)
export UV_NATIVE_TLS := 1
export CMAKE_BUILD_PARALLEL_LEVEL := 2
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: install test check lint demo run bench clean lock system-deps nightly serve collapse-demo

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(UV) pip sync --compile-bytecode --python $(BIN)/python requirements.lock
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	touch $@

# Re-pin after changing dependencies in pyproject.toml.
lock: $(VENV)/.installed
	$(UV) pip compile pyproject.toml --extra local --extra ray --extra dev \
		--python-version 3.11 -o requirements.lock

# Debian tools some tests drive (bubblewrap for the sandbox, node for translated code,
# chromium for the dashboard). Installed only when missing and only where apt exists.
system-deps:
	@bash scripts/system-deps.sh

test: install system-deps
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check synth tests bench
	$(BIN)/ruff format --check synth tests bench
	$(BIN)/mypy

check: lint test

demo: install
	$(BIN)/synth run recipes/demo.yaml -n 20 --seed 7 --out out/demo --force
	$(BIN)/synth inspect out/demo/data.jsonl

run: install
	$(BIN)/synth run recipes/$(RECIPE).yaml -n $(N) --seed $(SEED) --out $(OUT)

collapse-demo: install
	$(BIN)/python -m synth.curate.collapse_demo --out out/collapse-demo

# One night of the shipped batch (today's date; DATE=YYYY-MM-DD for another night).
nightly: install
	$(BIN)/synth batch batches/nightly.yaml $(if $(DATE),--date $(DATE))

# The HTTP service on loopback (export SYNTH_TOKEN and set SERVE_HOST=0.0.0.0 to expose it).
SERVE_HOST ?= 127.0.0.1
SERVE_PORT ?= 8080
serve: install
	$(BIN)/synth serve --host $(SERVE_HOST) --port $(SERVE_PORT)

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache build *.egg-info
