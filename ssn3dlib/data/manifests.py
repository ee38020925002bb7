"""Dataset manifests (data_manifests/<name>.yaml) and checking a dataset against one."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import yaml

from .. import REPO_ROOT
from .tracklets import VideoReIDDataset

MANIFEST_DIR = REPO_ROOT / "data_manifests"
REQUIRED_KEYS = ("name", "title", "source", "license", "citation", "layout", "counts")


def manifest_path(name: str) -> Path:
    return MANIFEST_DIR / f"{name}.yaml"


def load_manifest(name_or_path) -> Dict:
    """The manifest of a dataset name, or of an explicit .yaml path."""
    path = Path(name_or_path) if str(name_or_path).endswith((".yaml", ".yml")) else manifest_path(name_or_path)
    name = path.stem
    if not path.is_file():
        known = sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml"))
        raise ValueError(f"no manifest {path} for dataset {name!r}; known in {MANIFEST_DIR}: {known}")
    manifest = yaml.safe_load(path.read_text())
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"manifest {path} lacks keys {missing}")
    return manifest


def count_mismatches(dataset: VideoReIDDataset, expected: Dict[str, Dict[str, int]]) -> List[str]:
    """Human-readable lines for every count that differs from the manifest's."""
    actual = dataset.counts()
    lines = []
    for split, fields in expected.items():
        for field, want in (fields or {}).items():
            if want is None:
                continue
            got = actual.get(split, {}).get(field)
            if got != want:
                lines.append(f"{split} {field}: found {got}, manifest says {want}")
    return lines
