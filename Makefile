# Two commands for a new user: `make demo` and `make test` (README).
# Both create .venv when missing and are fast the second time: the install step
# only reruns when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sleap-rtc-installed
# The dev/test install pins torch and torchvision to builds that import together
# on a CPU-only machine, and brings the real SLEAP (1.6.x) that the plugin tests
# drive. Real GPU workers install the CUDA build they need (README).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test install system-deps lint types contracts pytest bench clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[worker,gui,server,sleap,dev]'
	touch $@

system-deps:
	@scripts/install-system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/sleap-rtc demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy

contracts: $(STAMP)
	$(VENV)/bin/lint-imports

pytest: $(STAMP) system-deps
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pytest -q

test: lint contracts types pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
