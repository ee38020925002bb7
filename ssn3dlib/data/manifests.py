"""Dataset manifests (data_manifests/<name>.yaml) and checking a dataset against one."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import yaml

from ..errors import InputError
from ..paths import package_data
from .tracklets import VideoReIDDataset

MANIFEST_DIR = package_data("data_manifests")
REQUIRED_KEYS = ("name", "title", "source", "license", "citation", "layout", "counts")


def manifest_path(name: str) -> Path:
    """A registered dataset's manifest (its DatasetInfo says where), else data_manifests/<name>.yaml."""
    from .registry import _registered

    info = _registered().get(name)
    return info.manifest_path if info else MANIFEST_DIR / f"{name}.yaml"


def load_manifest(name_or_path) -> Dict:
    """The manifest of a dataset name, or of an explicit .yaml path."""
    path = Path(name_or_path) if str(name_or_path).endswith((".yaml", ".yml")) else manifest_path(name_or_path)
    name = path.stem
    if not path.is_file():
        known = sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml"))
        raise InputError(f"no manifest {path} for dataset {name!r}; known in {MANIFEST_DIR}: {known}")
    manifest = yaml.safe_load(path.read_text())
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise InputError(f"manifest {path} lacks keys {missing}")
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


#: The `totals` keys that are counted over all splits together; other keys there
#: (e.g. PRID's per-camera identities, PKU's keypoint rows) are documentation only.
TOTAL_FIELDS = ("identities", "tracklets", "images")


def total_mismatches(dataset: VideoReIDDataset, totals: Optional[Dict[str, Optional[int]]]) -> List[str]:
    """Lines for every `totals` count that differs, counted over the union of the splits
    (a tracklet listed in two splits, like MARS queries in the official gallery, counts once)."""
    tracklets = {t.frames: t for split in (dataset.train, dataset.query, dataset.gallery) for t in split}
    actual = {"identities": len({t.pid for t in tracklets.values()}), "tracklets": len(tracklets),
              "images": len({f for frames in tracklets for f in frames})}
    return [f"total {field}: found {actual[field]}, manifest says {want}"
            for field, want in (totals or {}).items()
            if field in TOTAL_FIELDS and want is not None and actual[field] != want]


def unchecked_counts(expected: Dict[str, Dict[str, Optional[int]]],
                     totals: Optional[Dict[str, Optional[int]]] = None) -> List[str]:
    """The counts a manifest leaves null ("split field"): verify reports them as not checked."""
    skipped = [f"{split} {field}" for split, fields in expected.items()
               for field, want in (fields or {}).items() if want is None]
    return skipped + [f"total {field}" for field, want in (totals or {}).items()
                      if field in TOTAL_FIELDS and want is None]
