# The two set-up commands of the README:  `make demo`  and  `make test`  (CI: `make test-all`).
# Both create the virtual environment on first use (torch pinned to the local CPU wheel
# through constraints.txt on every pip call).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/pip install -q -c constraints.txt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv demo test test-all clean

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/refbench demo --out demo_out

test: venv
	$(BIN)/python -m pytest

test-all: venv
	$(BIN)/python -m pytest -m 'not data'

clean:
	rm -rf demo_out .pytest_cache .hypothesis
