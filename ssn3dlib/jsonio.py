"""JSON records: one sanitiser and atomic writes, for the engine and the studies alike.

A killed process must leave either the old file or the new one, never half a file that a later
run or the report would read as a result: every write goes to a temporary file first.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np


def to_jsonable(value: Any, digits: Optional[int] = None) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, NaN and infinities to None (JSON has
    neither), tuples to lists, paths to strings, dataclasses to dicts; with `digits`, floats are
    rounded (stable diffs of committed records)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), digits)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, digits) if digits is not None else value
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def write_json(path: Union[str, Path], payload: Any, indent: int = 1, digits: Optional[int] = None) -> Path:
    """Write `payload` (made JSON-ready) to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(payload, digits), indent=indent) + "\n")
    tmp.replace(path)
    return path


def read_json(path: Union[str, Path]) -> Optional[Any]:
    """A stored record, or None when it is absent or unreadable (a kill before the rename)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
