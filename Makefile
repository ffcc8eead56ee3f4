# Two commands do all the set-up: `make dashboard` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dashboard test test-fast lint benchmarks browser

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dashboard: $(STAMP)
	$(VENV)/bin/explainer dashboard

test: $(STAMP) browser
	$(PY) -m pytest -n 2 --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not browser"

# Installs Debian's chromium for the browser tests when it is missing and this user may (root with apt-get);
# otherwise the browser tests skip with the reason (and fail under CI=true).
browser:
	@bash tools/ensure_chromium.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --python-version 3.10 explainer  # the oldest Python the library supports

benchmarks: $(STAMP)
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done
