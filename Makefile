# The two commands of the README: `make report` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup report test clean-report

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Re-runs only when pyproject.toml changed: a second `make test` starts in seconds.
$(STAMP): pyproject.toml scripts/setup_env.sh | $(VENV)/bin/python
	bash scripts/setup_env.sh $(PY)
	touch $(STAMP)

setup: $(STAMP)
	$(PY) -m handpose.setup_assets

report: setup
	$(PY) -m handpose.report

test: setup
	$(PY) -m pytest

clean-report:
	rm -rf report
