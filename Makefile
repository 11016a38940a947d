# The two quick-start commands are `make demo` and `make test`; both install what they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo renderer test lint install system-deps bench clean

$(BIN)/uv:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv

# One stamp per extra: `make demo` installs what the demo needs, `make test` adds the test tools.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --python $(BIN)/python -q -e '.[$*]'
	touch $@

install: $(VENV)/.installed-test

# Debian chromium + fonts + PostgreSQL server binaries, npm adaptivecards (card rendering test).
system-deps:
	bash scripts/install_system_deps.sh

# The example project green, broken and fixed, in a new temporary Dagster home
# (DEMO_ARGS="--home DIR" to choose it, "--config monitoring.yaml" to send to your Teams too).
demo: $(VENV)/.installed-demo renderer
	$(BIN)/dagster-monitoring demo $(DEMO_ARGS)

# The card previews' PNG needs the npm renderer (and Debian chromium); the demo does without both.
renderer:
	@if [ ! -d tests/render/node_modules/adaptivecards ] && command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/render --no-audit --no-fund --loglevel=error || echo "npm ci failed: card previews without PNG"; fi

test: lint system-deps
	$(BIN)/python -m pytest

# ruff (lint + format check) and mypy over the package, configured in pyproject.toml
LINTED := dagster_monitoring benchmarks
lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/alert_noise.py
	$(BIN)/python benchmarks/router_throughput.py
	$(BIN)/python benchmarks/webhook_serve.py
	$(BIN)/python benchmarks/aws_sqs.py
	$(BIN)/python benchmarks/ticket_noise.py
	$(BIN)/python benchmarks/audit_ingest.py --faults
	$(BIN)/python benchmarks/faults.py
	$(BIN)/python benchmarks/tick_sensor.py
	$(BIN)/python benchmarks/sensor_tick.py
	$(BIN)/python benchmarks/alert_kinds.py
	$(BIN)/python benchmarks/noise_vs_msteams.py
	$(BIN)/python benchmarks/report_time.py
	$(BIN)/python benchmarks/export_time.py
	$(BIN)/python benchmarks/dbt_overhead.py
	$(BIN)/python benchmarks/demo_time.py

clean:
	rm -rf $(VENV) .venv-bqemu .dagster_monitoring tests/render/node_modules
