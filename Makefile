# The two commands a newcomer runs (see README.md); each builds its own environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
export QT_QPA_PLATFORM ?= offscreen
export HF_HUB_OFFLINE = 1

.PHONY: env check demo test test-fast screenshot clean-env

env:
	@bash scripts/setup_env.sh

check: env
	@$(PY) scripts/check_env.py

demo: env
	@$(PY) scripts/demo.py

test: env
	@$(PY) scripts/check_env.py
	@$(VENV)/bin/ruff check --quiet .
	@$(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: env
	@$(PY) -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

screenshot: env
	@bash scripts/qgis_screenshot.sh

clean-env:
	rm -rf $(VENV)
