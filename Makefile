# Two entry points, both self-contained on a fresh machine (Python 3.11 + a C++ compiler):
#   make demo   installs ncodec into .venv and entropy-codes the bundled real data
#   make test   installs ncodec with its test extras into .venv and runs the CI test suite
# Everything lives in .venv at the repository root, so .venv/bin/ncodec and
# .venv/bin/python work afterwards.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
TORCH := torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0
EXT_SOURCES := $(wildcard ext/*.h ext/*.cpp ext/*.cu)

.PHONY: demo test test-all bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip "setuptools>=69,<82" wheel ninja

# torch first: the extension is compiled against the venv's torch (no build isolation, so
# the multi-GB torch wheel is not downloaded a second time into a throwaway build env).
$(VENV)/.torch: | $(PY)
	$(PIP) install $(TORCH)
	touch $@

$(VENV)/.ncodec: setup.py setup.cfg pyproject.toml $(EXT_SOURCES) $(VENV)/.torch
	$(PIP) install --no-build-isolation -e .
	touch $@

$(VENV)/.ncodec-test: $(VENV)/.ncodec
	$(PIP) install --no-build-isolation -e '.[test]'
	touch $@

$(VENV)/.ncodec-bench: $(VENV)/.ncodec
	$(PIP) install --no-build-isolation -e '.[bench]'
	touch $@

install: $(VENV)/.ncodec

demo: $(VENV)/.ncodec
	$(VENV)/bin/ncodec demo

test: $(VENV)/.ncodec-test
	$(PY) -m pytest -m "not slow" -q

test-all: $(VENV)/.ncodec-test $(VENV)/.ncodec-bench
	$(PY) -m pytest -q

bench: $(VENV)/.ncodec-bench
	$(PY) benchmarks/entropy_coder.py

clean:
	rm -rf build *.egg-info ncodec/*.so
