"""Where the project reads data and writes reports: from the package location or the
environment, never from the current working directory (notebooks run from anywhere)."""
from __future__ import annotations

import os
from pathlib import Path

from . import REPO_ROOT


def reports_dir() -> Path:
    """$SSN3D_REPORTS, else <repo>/reports."""
    return Path(os.environ.get("SSN3D_REPORTS", REPO_ROOT / "reports")).expanduser().resolve()


def data_root() -> Path:
    """$SSN3D_DATA_ROOT, else <repo>/../shared/data (the shared real data beside a checkout)."""
    return Path(os.environ.get("SSN3D_DATA_ROOT", REPO_ROOT.parent / "shared" / "data")).expanduser().resolve()


#: Profiles a study runs under: ``smoke`` is each notebook's default parameters (what nbval
#: runs in CI), ``cpu`` the real study at 2-core scale (the committed reports), ``full`` the
#: paper's scale.
PROFILES = ("smoke", "cpu", "full")


def study_dir(study: str, profile: str = "cpu", create: bool = True) -> Path:
    """Where a study writes its figures and metrics.json.

    The ``cpu`` profile writes to ``reports/<study>/`` (committed, what readers see);
    other profiles write to ``reports/<profile>/<study>/`` so that a smoke run in CI never
    overwrites the committed results (``reports/smoke/`` is git-ignored).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    path = reports_dir() / study if profile == "cpu" else reports_dir() / profile / study
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def labels_dir() -> Path:
    """Labels this project made for data read in place (data_labels/ of a checkout)."""
    return REPO_ROOT / "data_labels"


def notebooks_dir() -> Path:
    """The source notebooks (read-only for every tool: executed copies go elsewhere)."""
    return REPO_ROOT / "notebooks"


def profile_params_file(notebook_stem: str, profile: str) -> Path:
    """Parameter file of one notebook under one profile: notebooks/params/<profile>/<stem>.yaml."""
    return notebooks_dir() / "params" / profile / f"{notebook_stem}.yaml"
