# Two commands do all the set-up on a fresh clone:
#   make study   — install, then run studies/hoffer_regime.yaml and write its report
#   make test    — install, then run the default test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= runs/hoffer_regime

.PHONY: study test test-slow bench lint docs clean

$(BIN)/lbgap: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@touch $@

study: $(BIN)/lbgap
	$(BIN)/lbgap study run studies/hoffer_regime.yaml --out $(OUT)

test: $(BIN)/lbgap
	$(BIN)/python -m pytest -q

test-slow: $(BIN)/lbgap
	$(BIN)/python -m pytest -q -m slow

# the peers of the curvature benchmark (the `bench` extra), torch kept at its pinned version
$(VENV)/.bench-extra: $(BIN)/lbgap pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e '.[bench]'
	@touch $@

bench: $(VENV)/.bench-extra
	$(BIN)/python -m bench

lint: $(BIN)/lbgap
	$(BIN)/ruff check lbgap plugins examples tests bench

docs: $(BIN)/lbgap
	$(BIN)/python -m lbgap.docgen docs/hooks.md

clean:
	rm -rf $(VENV) runs
