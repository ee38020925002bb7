"""What the studies that train through the engine (04 benchmark, 05 misalignment) share:
deciding whether a stored run is still valid for the config it would train now, and the
chance level its retrieval numbers are read against."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

#: Config keys that do not change a point's numbers: a result stays valid when only they differ.
NON_RESULT_KEYS = frozenset({
    "train.num_threads", "train.tensorboard", "train.device", "train.log_every_steps",
    "train.checkpoint_every_steps", "data.num_workers", "eval.num_workers", "eval.clips_per_batch",
})


def _flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and name not in ("data.options", "model.options"):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def config_differences(stored: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """Dotted keys whose values differ, leaving out those that do not change results."""
    a, b = _flatten(stored), _flatten(current)
    return sorted(k for k in set(a) | set(b) if k not in NON_RESULT_KEYS and a.get(k) != b.get(k))


def chance_rank1(dataset) -> float:
    """Expected rank-1 (percent) of a random ranking: per query, true matches over the gallery
    entries it is ranked against (same identity and camera excluded as junk), averaged."""
    rates = []
    for q in dataset.query:
        valid = [g for g in dataset.gallery if not (g.pid == q.pid and g.camid == q.camid)]
        hits = sum(g.pid == q.pid for g in valid)
        if hits and valid:
            rates.append(hits / len(valid))
    return 100.0 * float(np.mean(rates)) if rates else float("nan")
