"""Evaluation: features of every query and gallery tracklet (all frames, 32-frame clips,
averaged), distances, then CMC and mAP under the dataset's protocol.

Numbers are percentages (as in the paper's tables). Datasets evaluated over 10 random
splits (iLIDS-VID, PRID-2011, the PKU subset) train one model per split; `mean_over_splits`
averages their results.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..data.tracklets import VideoReIDDataset
from ..errors import InputError
from ..jsonio import to_jsonable
from .config import RunConfig

RANKS = (1, 5, 10, 20)
#: Keys of an evaluation result that are numbers in percent.
PERCENT_KEYS = tuple(f"rank{r}" for r in RANKS) + ("mAP",)


def tracklet_features(model: nn.Module, config: RunConfig, tracklets: Sequence, device: torch.device,
                      amp_dtype: Optional[torch.dtype] = None, progress: bool = True,
                      keypoints: Optional[Mapping[str, np.ndarray]] = None) -> torch.Tensor:
    """(len(tracklets), D) features; each distinct tracklet is computed once (MARS' official
    protocol has every query in the gallery too). keypoints: per-frame parts, for the
    supervised strategy only (it needs them at test time too)."""
    from ..data.clip_dataset import extract_features

    unique = list(dict.fromkeys(tracklets))
    e = config.eval
    extra = {"keypoints": keypoints} if keypoints is not None else {}
    feats = extract_features(model, unique, size=tuple(config.data.size), clip_len=e.clip_len,
                             clips_per_batch=e.clips_per_batch, num_workers=e.num_workers, device=device,
                             amp_dtype=amp_dtype, progress=progress, **extra)
    row = {t: i for i, t in enumerate(unique)}
    return feats[torch.tensor([row[t] for t in tracklets])]


def query_gallery_distances(model: nn.Module, dataset: VideoReIDDataset, config: RunConfig,
                            device: torch.device, amp_dtype: Optional[torch.dtype] = None,
                            progress: bool = True,
                            keypoints: Optional[Mapping[str, np.ndarray]] = None) -> np.ndarray:
    """(num_query, num_gallery) distances (eval.metric) between the features of the dataset's
    query and gallery tracklets, as the evaluation ranks them."""
    from ..metrics import compute_distance

    if not dataset.query or not dataset.gallery:
        raise InputError(f"dataset {dataset.name!r} has {len(dataset.query)} query and "
                         f"{len(dataset.gallery)} gallery tracklets; both are needed to evaluate")
    feats = tracklet_features(model, config, list(dataset.query) + list(dataset.gallery), device,
                              amp_dtype, progress, keypoints)
    nq = len(dataset.query)
    return compute_distance(feats[:nq], feats[nq:], metric=config.eval.metric)


def identities_and_cameras(dataset: VideoReIDDataset):
    """(q_pids, g_pids, q_camids, g_camids) arrays, in evaluate_rank's argument order."""
    def column(split, key):
        return np.array([getattr(t, key) for t in getattr(dataset, split)])

    return column("query", "pid"), column("gallery", "pid"), column("query", "camid"), column("gallery", "camid")


def evaluate_model(model: nn.Module, dataset: VideoReIDDataset, config: RunConfig, device: torch.device,
                   amp_dtype: Optional[torch.dtype] = None, progress: bool = True,
                   keypoints: Optional[Mapping[str, np.ndarray]] = None) -> Dict[str, Any]:
    """Rank-1/5/10/20 and mAP (percent) of `model` on the dataset's query and gallery
    (keypoints: the supervised strategy's per-frame parts, else None).

    `per_query` keeps what the summary numbers are made of, one entry per query tracklet in
    query order, so two runs on one test set can be paired query by query: `query` (tracklet
    names), `first_match_rank` (1-based rank of the first true match, 0 for a query without
    one) and `ap` (its average precision in 0..1, None without a match). Rank-1 is the share
    of matched queries with first_match_rank 1, mAP the mean of their ap (see `per_query_metrics`)."""
    from ..metrics import evaluate_rank

    start = time.perf_counter()
    distmat = query_gallery_distances(model, dataset, config, device, amp_dtype, progress, keypoints)
    nq = len(dataset.query)
    result = evaluate_rank(distmat, *identities_and_cameras(dataset), max_rank=config.eval.max_rank,
                           ap=config.eval.ap)
    cmc = (100.0 * result.cmc).tolist()
    out = {f"rank{r}": cmc[min(r, len(cmc)) - 1] for r in RANKS}   # a gallery shorter than r: all of it
    out.update({
        "mAP": 100.0 * float(result.mAP),
        "cmc": cmc,
        "ap_definition": config.eval.ap,
        "distance": config.eval.metric,
        "num_query": nq,
        "num_gallery": len(dataset.gallery),
        "num_query_without_match": int(result.num_no_match),
        "per_query": per_query_record(dataset.query, result),
        "protocol": to_jsonable(dataset.protocol),
        "eval_seconds": time.perf_counter() - start,
    })
    return out


def per_query_record(queries: Sequence, result) -> Dict[str, List]:
    """The per-query arrays of a RankResult, keyed by query tracklet name (the index when a
    tracklet has no name)."""
    ranks = [int(r) for r in result.first_match_rank]
    ap = iter(float(v) for v in result.average_precision)
    return {"query": [t.name or str(i) for i, t in enumerate(queries)], "first_match_rank": ranks,
            "ap": [next(ap) if r > 0 else None for r in ranks]}


def per_query_metrics(per_query: Mapping[str, Sequence]) -> Dict[str, float]:
    """Rank-1 and mAP (percent) recomputed from a `per_query` record (queries without a true
    match left out, as the evaluation does)."""
    ranks = np.asarray(per_query["first_match_rank"])
    matched = ranks > 0
    if not matched.any():
        raise ValueError("no query of this per-query record has a true match")
    ap = np.array([a for a, m in zip(per_query["ap"], matched) if m], dtype=np.float64)
    return {"rank1": 100.0 * float(np.mean(ranks[matched] == 1)), "mAP": 100.0 * float(ap.mean())}


def evaluate(checkpoint: Union[str, Path], overrides: Sequence[str] = (), device: str = "auto",
             progress: bool = True) -> Dict[str, Any]:
    """Evaluate a checkpoint with the config it was trained with.

    overrides change evaluation-side settings (e.g. "eval.ap=mars-official",
    "data.options.gallery=gallery-only", "data.root=/data/MARS"); the model always comes
    from the checkpoint. Returns the metrics plus what the report needs: dataset, model,
    strategy, epochs trained, wall time, device.
    """
    from .build import evaluation_keypoints, prepare_dataset

    start = time.perf_counter()
    trained = load_trained(checkpoint, overrides, device)
    model, config, payload, dev = trained.model, trained.config, trained.payload, trained.device
    dataset = prepare_dataset(config.data, progress=progress)
    metrics = evaluate_model(model, dataset, config, dev, trained.amp_dtype, progress,
                             evaluation_keypoints(config, dataset))
    return {**metrics, **run_description(config, dataset), "epochs": payload["epoch"],
            "checkpoint": str(Path(checkpoint).resolve()),
            "train_seconds": payload.get("train_seconds"), "wall_seconds": time.perf_counter() - start,
            "device": device_name(dev)}


class TrainedModel(NamedTuple):
    """A checkpoint's model rebuilt from its own config, weights loaded, on `device`, eval mode."""

    model: nn.Module
    config: RunConfig
    payload: Dict[str, Any]
    device: torch.device
    amp_dtype: Optional[torch.dtype]


def load_trained(checkpoint: Union[str, Path], overrides: Sequence[str] = (),
                 device: str = "auto") -> TrainedModel:
    """Rebuild an engine checkpoint's model with the config it was trained with (overrides
    change data/eval settings), refusing a file that is no engine checkpoint or whose weights
    do not fit its config (CheckpointError). What `evaluate`, `ssn3d visrank` and
    `ssn3d extract` run."""
    from .build import amp_dtype as autocast_dtype, build_model
    from .checkpoint import check_signature, load_checkpoint, model_signature, unwrap
    from .config import load_config
    from .distributed import resolve_device

    payload = load_checkpoint(checkpoint)
    config = load_config(payload["config"], overrides)
    dev = resolve_device(device)
    model = build_model(config)
    check_signature(payload["signature"], model_signature(model, config.to_dict()["model"],
                                                          config.data.clip_len), str(checkpoint))
    unwrap(model).load_state_dict(payload["model"])
    model.to(dev).eval()
    amp = autocast_dtype(config, dev) if dev.type == "cuda" else None
    return TrainedModel(model, config, payload, dev, amp)


def run_description(config: RunConfig, dataset: Optional[VideoReIDDataset] = None) -> Dict[str, Any]:
    """Dataset, model, strategy, sharing, lambda: what a result row is labelled with."""
    has_ssn = config.model.capabilities().ssn
    return {
        "dataset": config.data.name,
        "split": config.data.options.get("split"),
        "model": config.model.name,
        "backbone": config.model.backbone,
        "strategy": config.model.strategy if has_ssn else None,
        "shared_classifier": config.model.shared_classifier if has_ssn else None,
        "lambda_ssn": config.lambda_ssn() if has_ssn else None,
        "input_size": list(config.data.size),
        "clip_len": config.data.clip_len,
        "seed": config.train.seed,
    }


def run_title(config: RunConfig) -> str:
    """A run named in words, for figure rows and titles (the benchmark's legend label, then
    dataset, its split when it has one, and seed): "SSN3D semi-supervised, λ=0.1 · synthetic
    world · seed 0", "... · PKU-Reid subset, split 0 · seed 0"."""
    from ..data.registry import dataset_title
    from ..studies.benchmark import label

    d = run_description(config)
    split = "" if d["split"] is None else f", split {d['split']}"
    return f"{label(d)} · {dataset_title(d['dataset'])}{split} · seed {d['seed']}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def mean_over_splits(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The protocol's number for iLIDS-VID / PRID / PKU: each metric averaged over splits
    (with its standard deviation), plus the per-split values."""
    if not results:
        raise ValueError("no split results to average")
    splits = [r.get("split") for r in results]
    if len(set(splits)) != len(splits):
        raise ValueError(f"split results must come from distinct splits, got {splits}")
    out: Dict[str, Any] = {k: results[0][k] for k in ("dataset", "model", "strategy", "ap_definition")
                           if k in results[0]}
    for key in PERCENT_KEYS:
        values = np.array([r[key] for r in results], dtype=np.float64)
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out["splits"] = splits
    out["per_split"] = [{k: r[k] for k in ("split", *PERCENT_KEYS)} for r in results]
    return out
