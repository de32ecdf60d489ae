# StoreSight: `make demo` runs the main job, `make test` the tests. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SHARED_DATA ?= $(or $(firstword $(wildcard ../shared/data /work/shared/data)),../shared/data)

.PHONY: demo test lint pytest models eval bench clean

demo: models
	STORESIGHT_DATA_DIR=$(SHARED_DATA) $(BIN)/python -m demo.run $(if $(SOURCE),--source $(SOURCE))

test: lint pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy .

pytest: models
	$(BIN)/pytest

models: $(INSTALLED)
	$(BIN)/storesight-models fetch

eval: models
	$(BIN)/storesight-eval detection
	$(BIN)/storesight-eval agegender --json agegender.json
	$(BIN)/storesight-eval verify --json verify.json
	$(BIN)/storesight-eval identify --json identify.json

bench: models
	$(BIN)/python bench/embedder.py --json bench-embedder.json
	$(BIN)/python bench/kiosk_pipeline.py --json bench-kiosk.json
	$(BIN)/python bench/checkout_latency.py --json bench-checkout.json
	$(BIN)/python bench/recognition.py --json bench-recognition.json

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "StoreSight needs Python 3.11, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) models/files .mypy_cache .ruff_cache .pytest_cache
