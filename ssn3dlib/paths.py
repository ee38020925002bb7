"""Where the project reads data and writes reports.

In a source checkout (an editable install) the defaults lie in and beside the repository,
whatever the working directory (notebooks run from anywhere). Installed from a wheel there is
no repository: outputs and data default to the working directory, never beside the package,
and what ships with the package (configs, dataset manifests, labels) is read as package data.
The environment variables override both.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Optional

from . import REPO_ROOT
from .errors import InputError, Unavailable


class CheckoutRequired(Unavailable):
    """A tool that needs the repository's own files (the study notebooks) ran from a wheel install."""


def output_file(path, suffixes, option: str = "--out") -> Path:
    """A file a command will write, checked before any work: one of the suffixes, not a folder, and
    in a folder that exists or can be made (every existing ancestor a writable folder)."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{option} {path}: the file must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; name a file in it, e.g. {path / ('out' + suffixes[0])}")
    ancestor = path.parent.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        why = "not a folder" if not ancestor.is_dir() else "no write permission"
        raise InputError(f"{option} {path}: cannot write under {ancestor} ({why}); choose another place")
    return path


def _checkout() -> Optional[Path]:
    """The repository root when ssn3dlib runs from a source checkout, else None."""
    return REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "notebooks").is_dir() else None


def checkout_root(needed_by: str = "this command") -> Path:
    """The repository root; CheckoutRequired, saying what to do, when there is none."""
    root = _checkout()
    if root is None:
        raise CheckoutRequired(
            f"{needed_by} needs a source checkout of the repository (its notebooks/ and their parameter "
            f"files), but ssn3dlib runs installed at {Path(__file__).resolve().parent}: clone the "
            f"repository and run `make install` there (the library commands, such as ssn3d info, train, "
            f"evaluate and data, work from any installation)")
    return root


def package_data(name: str) -> Path:
    """A folder that ships inside the package (configs, data_manifests, data_labels), read through
    importlib.resources, so the same code finds it in a wheel install and in a checkout (where
    ssn3dlib/<name> is a link to the repository's <name>/)."""
    path = resources.files(__package__) / name
    if not isinstance(path, Path):  # a zipped package has no folders to hand out
        raise RuntimeError(f"ssn3dlib must be installed as files, not zipped ({path})")
    return path


def _default_under(checkout_default: Path, cwd_name: str) -> Path:
    """The checkout's place, else <working directory>/<cwd_name>."""
    return checkout_default if _checkout() is not None else Path.cwd() / cwd_name


def reports_dir() -> Path:
    """$SSN3D_REPORTS, else <repo>/reports in a checkout, else ./reports (a wheel install)."""
    default = _default_under(REPO_ROOT / "reports", "reports")
    return Path(os.environ.get("SSN3D_REPORTS", default)).expanduser().resolve()


def data_root() -> Path:
    """$SSN3D_DATA_ROOT, else <repo>/../shared/data (the shared real data beside a checkout),
    else ./data (a wheel install)."""
    default = _default_under(REPO_ROOT.parent / "shared" / "data", "data")
    return Path(os.environ.get("SSN3D_DATA_ROOT", default)).expanduser().resolve()


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
    """Labels this project made for data read in place (data_labels/, shipped as package data)."""
    return package_data("data_labels")


def notebooks_dir() -> Path:
    """The source notebooks (read-only for every tool: executed copies go elsewhere); a checkout's only."""
    return checkout_root("the study batch (ssn3d studies)") / "notebooks"


def profile_params_file(notebook_stem: str, profile: str) -> Path:
    """Parameter file of one notebook under one profile: notebooks/params/<profile>/<stem>.yaml."""
    return notebooks_dir() / "params" / profile / f"{notebook_stem}.yaml"
