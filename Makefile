# Two entry points do all set-up on a fresh machine:
#   make report   the studies on built-in data, writing reports/
#   make test     ruff, then the whole test suite (pytest + nbval over notebooks/)
# Both create .venv (or reuse it) and install what is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: report test bench bench-gpu install clean-venv notebooks pose-env

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(PY) -m ssn3dlib studies run --profile cpu

notebooks: $(STAMP)
	$(PY) -m ssn3dlib studies refresh

test: $(STAMP)
	$(PY) -m ruff check ssn3dlib tests benchmarks
	$(PY) -m pytest tests notebooks --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg -q

bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_loader.py
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_ssn3d_step.py

bench-gpu: $(STAMP)
	$(PY) benchmarks/bench_models.py --device cuda

# MediaPipe Pose 0.10.14 (keypoint pseudo-labels) needs numpy<2: its own environment.
POSE_VENV  ?= .venv-pose
POSE_STAMP := $(POSE_VENV)/.installed

pose-env: $(POSE_STAMP)

$(POSE_STAMP): pyproject.toml
	test -x $(POSE_VENV)/bin/python || $(PYTHON) -m venv $(POSE_VENV)
	echo '*' > $(POSE_VENV)/.gitignore
	$(POSE_VENV)/bin/python -m pip install --quiet "mediapipe==0.10.14" "numpy<2" pillow pandas tqdm pyyaml filelock
	$(POSE_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(POSE_STAMP)

clean-venv:
	rm -rf $(VENV)
