"""What the studies that train through the engine (04 benchmark, 05 misalignment) share:
training a run or reusing the one already on disk, its first and final epoch losses, and the
chance level its retrieval numbers are read against."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ...engine.config import RESULT_NEUTRAL_KEYS, config_changes


def config_differences(stored: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """Dotted keys whose values differ, leaving out those that change no result."""
    return config_changes(stored, current, ignore=RESULT_NEUTRAL_KEYS)


def stored_config_differences(config, run_dir: Union[str, Path]) -> List[str]:
    """How the config stored in run_dir differs from `config` ([] when none is stored)."""
    import yaml

    stored = Path(run_dir) / "config.yaml"
    if not stored.is_file():
        return []
    return config_differences(yaml.safe_load(stored.read_text()) or {}, config.to_dict())


def train_or_reuse(config, run_dir: Union[str, Path], progress: bool = False):
    """Train the configured run in run_dir, continuing (or just loading) what is there when it
    was started with a config that gives the same numbers, retraining from scratch when not.

    Returns the engine's RunResult, with an evaluation (an error otherwise).
    """
    from tqdm.auto import tqdm

    from ...engine import train

    changed = stored_config_differences(config, run_dir)
    if changed:
        tqdm.write(f"{Path(run_dir).name}: config changed in {', '.join(changed[:4])}; retraining from scratch")
    result = train(config, run_dir, resume=not changed, progress=progress)
    if result.final is None:
        raise RuntimeError(f"{run_dir}: training ended without an evaluation; the engine evaluates after "
                           f"the last epoch, so the run did not finish")
    return result


def was_loaded(result, config) -> bool:
    """True when train_or_reuse found the run already finished (nothing was trained)."""
    return result.resumed_from is not None and result.resumed_from["epoch"] >= config.train.epochs


def epoch_losses(run_dir: Union[str, Path], has_ssn: bool) -> Dict[str, Optional[float]]:
    """First and last epoch means of the triplet and SSN losses, and the steps trained: did
    the run learn, and did its SSN (a fresh SSN sits at log N)?"""
    from ...engine import read_metrics

    log = read_metrics(run_dir)
    epochs = log[log["kind"] == "epoch"] if "kind" in log else log
    out: Dict[str, Optional[float]] = {"steps": int(epochs["step"].iloc[-1]) if len(epochs) else None}
    for key in ("triplet", "ssn"):
        has = len(epochs) and key in epochs and (key == "triplet" or has_ssn)
        out[f"first_{key}_loss"] = float(epochs[key].iloc[0]) if has else None
        out[f"final_{key}_loss"] = float(epochs[key].iloc[-1]) if has else None
    return out


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
