# Two entry points, both self-contained on a fresh machine (Python 3.11 + a C++ compiler):
#   make demo   installs ncodec into .venv and runs `ncodec demo`: the shipped image and speech
#               codecs on the bundled photos and speech, beside their classical peers
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

# Third-party requirements (setup.cfg's install_requires plus the named extras) install with
# build isolation, so that a package built from source (pesq has no wheel) gets its own build
# requirements (Cython, numpy); only ncodec itself builds without isolation, against the
# venv's torch. Arguments: the extras.
REQUIREMENTS = $(PY) -c 'import configparser, sys; c = configparser.ConfigParser(); c.read("setup.cfg"); \
	print("\n".join(r for s in [c["options"]["install_requires"]] + [c["options.extras_require"][e] for e in sys.argv[1:]] for r in s.split()))'

$(VENV)/.ncodec: setup.py setup.cfg pyproject.toml $(EXT_SOURCES) $(VENV)/.torch
	$(REQUIREMENTS) > $(VENV)/requirements.txt
	$(PIP) install -r $(VENV)/requirements.txt
	$(PIP) install --no-build-isolation --no-deps -e .
	touch $@

$(VENV)/.ncodec-test: $(VENV)/.ncodec
	$(REQUIREMENTS) test > $(VENV)/requirements-test.txt
	$(PIP) install -r $(VENV)/requirements-test.txt
	touch $@

$(VENV)/.ncodec-bench: $(VENV)/.ncodec
	$(REQUIREMENTS) bench > $(VENV)/requirements-bench.txt
	$(PIP) install -r $(VENV)/requirements-bench.txt
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
