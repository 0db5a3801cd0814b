# Two commands take a fresh clone to a running course:
#   make lab    create .venv, install nasedu and open JupyterLab on notebook 00
#   make test   the same install, then the whole test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nasedu-installed

.PHONY: lab test install system-deps browser-deps benchmarks clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	@touch $(STAMP)

# graphviz's `dot` draws the cells; without it nasedu falls back to plotly drawings.
system-deps:
	@sh .ci/system-deps.sh graphviz

# Debian's Chromium drives the widget tests (test tools never download a browser).
browser-deps:
	@sh .ci/system-deps.sh chromium

lab: install system-deps
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

test: install system-deps browser-deps
	$(BIN)/python -m pytest -q -ra

# Whole-run timings printed as ratios (this machine's absolute speed varies); minutes, not seconds.
benchmarks: install system-deps
	$(BIN)/python benchmarks/supernet_step.py
	$(BIN)/python benchmarks/dashboard_overhead.py
	$(BIN)/python benchmarks/threads.py
	$(BIN)/python benchmarks/bench_protocol.py
	$(BIN)/python benchmarks/quick_darts.py
	$(BIN)/python benchmarks/hypergrad_error.py
	$(BIN)/python benchmarks/hypergrad_search.py

clean:
	rm -rf $(VENV) .pytest_cache
