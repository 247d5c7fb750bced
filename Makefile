# Two commands matter: `make up` brings the system up locally, `make test` runs the tests.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)

.PHONY: install test lint canary up up-scale demo status bench bench-smoke verify-long

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode  # without .pyc files every Prefect process spends about 2.5 s more on imports

test: install lint
	$(UV) run --frozen pytest -q -n 2 --dist loadfile --no-loadscope-reorder

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

up: install
	$(UV) run --frozen landing up

up-scale: install  # PostgreSQL + Redis on loopback (Debian: apt-get install postgresql redis-server), API and services apart
	$(UV) run --frozen landing up-scale

demo: install
	$(UV) run --frozen landing demo

status: install
	$(UV) run --frozen landing status

canary:  # the newest upstream releases, in a throwaway environment: which docs/upstream.md entries still hold
	rm -rf .canary && $(UV) run --frozen python -m tests.canary

verify-long: install  # incremental equals full on 2,000 generated file sequences (make test runs 200, the same each run)
	LANDING_EQUIVALENCE_EXAMPLES=2000 $(UV) run --frozen pytest -q -p no:cacheprovider tests/test_equivalence.py

bench: install
	$(UV) run --frozen python -m benchmarks.run

bench-smoke: install
	$(UV) run --frozen pytest -q -p no:cacheprovider benchmarks/test_smoke.py
