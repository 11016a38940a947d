# The two quick-start commands are `make demo` and `make test`; both install what they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install system-deps bench clean

$(BIN)/uv:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv

$(VENV)/.installed: pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --python $(BIN)/python -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Debian chromium + fonts + PostgreSQL server binaries, npm adaptivecards (card rendering test).
system-deps:
	bash scripts/install_system_deps.sh

demo: install
	$(BIN)/dagster-monitoring send-test --config examples/monitoring.local.yaml --receiver local-file
	@echo "The alert was appended to .dagster_monitoring/alerts.jsonl"

test: install system-deps
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/alert_noise.py
	$(BIN)/python benchmarks/router_throughput.py
	$(BIN)/python benchmarks/ticket_noise.py
	$(BIN)/python benchmarks/audit_ingest.py
	$(BIN)/python benchmarks/sensor_tick.py
	$(BIN)/python benchmarks/noise_vs_msteams.py
	$(BIN)/python benchmarks/dbt_overhead.py

clean:
	rm -rf $(VENV) .venv-bqemu .dagster_monitoring tests/render/node_modules
