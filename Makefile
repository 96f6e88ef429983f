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
# The interop tests run the real sleap-rtc 0.0.7 (from PyPI) beside ours. It gets
# its own venv, so that its `sleap-rtc` script does not replace ours; a .pth file
# lends it the dev venv's packages, so only what 0.0.7 adds is installed.
LEGACY := .venv-007
LEGACY_STAMP := $(LEGACY)/.sleap-rtc-0.0.7-installed
PURELIB := import sysconfig; print(sysconfig.get_paths()["purelib"])

.PHONY: demo test install system-deps lint types contracts pytest bench clean

install: $(STAMP) $(LEGACY_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[worker,gui,server,sleap,dev]'
	touch $@

$(LEGACY_STAMP): $(STAMP)
	$(PY) -m venv $(LEGACY)
	$(PY) -c '$(PURELIB)' > "$$($(LEGACY)/bin/python -c '$(PURELIB)')/_sleap_rtc_dev.pth"
	$(LEGACY)/bin/python -m pip install -q 'sleap-rtc==0.0.7'
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

pytest: $(STAMP) $(LEGACY_STAMP) system-deps
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pytest -q

test: lint contracts types pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(LEGACY) .pytest_cache .mypy_cache .ruff_cache .hypothesis
