# Two entry points do all set-up on a fresh machine:
#   make report   the studies on built-in data, writing reports/
#   make test     ruff, then the whole test suite (pytest + nbval over notebooks/)
# Both create .venv (or reuse it) and install what is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Every package and version the environment holds, the test tools included (`make lock` refreshes it).
LOCK   := requirements.lock

.PHONY: report test browser bench bench-gpu gpu-check install lock clean-venv notebooks pose-env

# The lock first, then this project on top of it without resolving anything again
# (no build isolation: the lock's setuptools builds it, nothing is fetched for the build).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

report: $(STAMP)
	$(PY) -m ssn3dlib studies run --profile cpu

notebooks: $(STAMP)
	$(PY) -m ssn3dlib studies refresh

test: $(STAMP) browser
	$(PY) -m ruff check ssn3dlib tests benchmarks
	SSN3D_REQUIRE_BROWSER=1 SSN3D_CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests notebooks --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg -q

# Debian's Chromium for the explorer's browser test (Playwright drives it; its own download is not
# reachable here). About 20 s with apt; needs root or sudo, says so otherwise.
CHROMIUM ?= /usr/bin/chromium

browser:
	@test -x $(CHROMIUM) || { \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	    else echo "error: $(CHROMIUM) is missing and installing it needs root: run 'apt-get install chromium' as root" >&2; exit 2; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

bench: $(STAMP)
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_loader.py
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_ssn3d_step.py

bench-gpu: $(STAMP)
	$(PY) benchmarks/bench_models.py --device cuda

# Every GPU path, briefly, on one GPU (about 5 minutes): CUDA training in fp32, bf16, fp16 with
# GradScaler and channels_last, a one-process NCCL torchrun, bench_models.py --device cuda, the
# notebooks on CUDA; prints a table, writes reports/perf/gpu_check.json. Not yet run on a GPU
# (benchmarks/gpu_check.py --cpu exercises the script itself on CPU).
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

# MediaPipe Pose 0.10.14 (keypoint pseudo-labels) needs numpy<2: its own environment.
POSE_VENV  ?= .venv-pose
POSE_STAMP := $(POSE_VENV)/.installed

pose-env: $(POSE_STAMP)

$(POSE_STAMP): pyproject.toml
	test -x $(POSE_VENV)/bin/python || $(PYTHON) -m venv $(POSE_VENV)
	echo '*' > $(POSE_VENV)/.gitignore
	$(POSE_VENV)/bin/python -m pip install --quiet "mediapipe==0.10.14" "numpy<2" pillow pandas tqdm pyyaml filelock scipy
	$(POSE_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(POSE_STAMP)

# Refresh requirements.lock after a change to pyproject.toml's dependencies, then `make test`:
#   make lock             re-resolve, keeping every pin that still fits
#   make lock UPGRADE=1   move every package to its newest release
# The lock is for CPython 3.11 on Linux x86_64 and holds PyPI's torch wheel, which carries CUDA
# and runs on CPU too. uv (pinned) lives in its own environment, $(LOCK_TOOLS).
LOCK_TOOLS ?= .venv-lock

lock:
	test -x $(LOCK_TOOLS)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOLS) && echo '*' > $(LOCK_TOOLS)/.gitignore \
	    && $(LOCK_TOOLS)/bin/python -m pip install --quiet "uv==0.13.9"; }
	$(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --extra test --python-version 3.11.7 \
	    --python-platform x86_64-manylinux_2_28 $(if $(UPGRADE),--upgrade) \
	    --custom-compile-command "make lock" --quiet -o $(LOCK)

clean-venv:
	rm -rf $(VENV)
