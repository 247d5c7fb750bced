# Two commands matter: `make up` brings the system up locally, `make test` runs the tests.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: install test up

install:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@$(UV) --version >/dev/null 2>&1 || { echo "uv is not installed and could not be installed with pip"; exit 1; }
	$(UV) sync --frozen

test: install
	$(UV) run --frozen pytest -q

up: install
	$(UV) run --frozen python -m landing up
