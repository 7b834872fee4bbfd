# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test bench lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

run: install
	bin/run

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .

bench: install
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done
