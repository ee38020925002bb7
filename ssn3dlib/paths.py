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
