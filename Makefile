# spkid developer tasks. Every target creates ./.venv on first use, so a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs spkid into ./.venv (not system-wide): `. .venv/bin/activate` puts the `spkid` command on the PATH.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@echo "spkid is installed in $(VENV)/: run '. $(VENV)/bin/activate' to put the spkid command on your PATH"

install-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"

demo: install
	$(BIN)/spkid demo
	@echo "next: '. $(VENV)/bin/activate' puts spkid on your PATH; README.md's tour continues on demo_output/"

test: install-dev
	$(BIN)/python -m pytest -q

bench: install-dev
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: install-dev
	$(BIN)/ruff check spkid tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
