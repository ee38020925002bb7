# Two entry points do all set-up on a fresh machine:
#   make report   the studies on built-in data, writing reports/
#   make test     the whole test suite (pytest + nbval over notebooks/)
# Both create .venv (or reuse it) and install what is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: report test bench install clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(PY) -m ssn3dlib demo

test: $(STAMP)
	$(PY) -m pytest tests --nbval notebooks -q

bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py

clean-venv:
	rm -rf $(VENV)
