# The two commands of the README: `make report` and `make test`. Both set up .venv first; `make test`
# adds the development extra (pytest, playwright). The open hand model ships in src/handpose/assets/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: setup setup-dev report test clean-report

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Re-runs only when pyproject.toml changed: a second `make test` starts in seconds.
$(STAMP): pyproject.toml scripts/setup_env.sh | $(VENV)/bin/python
	bash scripts/setup_env.sh $(PY)
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	bash scripts/setup_env.sh $(PY) --dev
	touch $(DEV_STAMP)

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

report: setup
	$(PY) -m handpose.report

test: setup-dev
	$(PY) -m pytest

clean-report:
	rm -rf report
