# The README's two commands: `make run` starts a farm on this machine, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.installed

.PHONY: run test faults bench openapi lint clean

$(READY): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "EdgeFarm needs Python 3.11 (onnx2tf 1.29 / TensorFlow 2.19); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[all]'
	@# The dashboard's browser tests drive Debian's chromium (Playwright's own browser download needs the internet).
	command -v chromium >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium) || true
	touch $(READY)

run: $(READY)
	$(BIN)/edgefarm up

test: $(READY)
	$(BIN)/pytest

# The fault suite with more trials than CI's 5 (results: docs/benchmarks.md). FAULT_TRIALS=50 make faults
FAULT_TRIALS ?= 20
faults: $(READY)
	EDGEFARM_FAULT_TRIALS=$(FAULT_TRIALS) $(BIN)/pytest tests/e2e/test_faults.py -q

bench: $(READY)
	$(BIN)/python bench/compile.py
	$(BIN)/python bench/profile_jobs.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/corpus.py

openapi: $(READY)
	$(BIN)/python -m edgefarm_gateway openapi > openapi/openapi.json

lint: $(READY)
	$(BIN)/ruff check sdk services workers device_agents tests bench examples

clean:
	rm -rf $(VENV)
