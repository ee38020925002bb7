"""What every study writes: one metrics.json (atomic) and one timing key. The JSON sanitiser and
atomic writes are ``ssn3dlib.jsonio``'s (the engine writes records too), re-exported here."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ...jsonio import read_json, to_jsonable, write_json

#: The one key under which a record states how long it took (wall-clock seconds).
WALL_TIME_KEY = "wall_time_s"
#: A study that trains several runs may also state their summed training times (for runs
#: loaded from disk, the time they took when trained) under this key: not a second wall time.
RUNS_WALL_TIME_KEY = "runs_" + WALL_TIME_KEY
#: Key of a study's findings in its metrics.json: sentences computed from its numbers that no single
#: claim row says (a result across settings, a measurement without a hypothesis); the report lists
#: them under the study.
FINDINGS_KEY = "findings"
#: The one file name of a study's numbers, under reports/<study>/ (see ssn3dlib.paths.study_dir).
METRICS_FILE = "metrics.json"


def write_metrics(metrics: dict, out_dir: Union[str, Path], indent: int = 2) -> Path:
    """A study's metrics.json in `out_dir`, atomically."""
    return write_json(Path(out_dir) / METRICS_FILE, metrics, indent=indent)


__all__ = ["WALL_TIME_KEY", "RUNS_WALL_TIME_KEY", "FINDINGS_KEY", "METRICS_FILE", "read_json", "to_jsonable",
           "write_json",
           "write_metrics"]
