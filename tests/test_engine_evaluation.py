"""Evaluation bookkeeping (hand-computed rankings, split means) and the schedule."""
from __future__ import annotations

import pytest
import torch

from ssn3dlib.data import clip_dataset
from ssn3dlib.data.tracklets import Tracklet, VideoReIDDataset
from ssn3dlib.engine import evaluate, load_config, mean_over_splits, train
from ssn3dlib.engine.build import epoch_schedule
from ssn3dlib.engine.evaluator import evaluate_model, per_query_metrics, run_title

from engine_helpers import tiny_config

A, B = Tracklet(("a",), 1, 1, "A"), Tracklet(("b",), 2, 1, "B")
C, D, E = Tracklet(("c",), 1, 2, "C"), Tracklet(("d",), 2, 2, "D"), Tracklet(("e",), 3, 2, "E")
POSITION = {A: 0.0, B: 1.0, C: 0.2, D: 1.5, E: 0.8}


def test_ranking_by_hand_and_each_tracklet_extracted_once(monkeypatch):
    """A: C (0.2) < E (0.8) < D: hit at rank 1, AP 1. B: E (0.2) < D (0.5): hit at rank 2, AP 1/2."""
    calls = []

    def fake_extract(model, tracklets, **kwargs):
        calls.append(list(tracklets))
        return torch.tensor([[POSITION[t]] for t in tracklets])

    monkeypatch.setattr(clip_dataset, "extract_features", fake_extract)
    dataset = VideoReIDDataset("synthetic_world", "/x", [], [A, B], [C, D, E, A], {"gallery": "test"})
    result = evaluate_model(None, dataset, load_config(), torch.device("cpu"), progress=False)
    assert calls == [[A, B, C, D, E]]                 # A is query and gallery: extracted once
    # A in the gallery is same pid + same camera for query A (junk) and a negative for B (distance 1).
    assert result["cmc"][:3] == [50.0, 100.0, 100.0]
    assert (result["rank1"], result["rank5"], result["rank20"]) == (50.0, 100.0, 100.0)
    assert result["mAP"] == pytest.approx(75.0)
    assert (result["num_query"], result["num_gallery"], result["ap_definition"]) == (2, 4, "standard")
    assert result["per_query"] == {"query": ["A", "B"], "first_match_rank": [1, 2], "ap": [1.0, 0.5]}
    assert per_query_metrics(result["per_query"]) == {"rank1": 50.0, "mAP": 75.0}


def test_query_without_match_has_rank_0_and_no_ap(monkeypatch):
    """E (pid 3) as a query has no same-pid gallery entry: rank 0, ap None, left out of rank-1 and mAP."""
    monkeypatch.setattr(clip_dataset, "extract_features",
                        lambda model, tracklets, **kw: torch.tensor([[POSITION[t]] for t in tracklets]))
    dataset = VideoReIDDataset("synthetic_world", "/x", [], [B, E], [C, D, A], {"gallery": "test"})
    result = evaluate_model(None, dataset, load_config(), torch.device("cpu"), progress=False)
    # B at 1.0: D (distance 0.5) before C (0.8) and A (1.0): its true match at rank 1, AP 1.
    assert result["per_query"] == {"query": ["B", "E"], "first_match_rank": [1, 0], "ap": [1.0, None]}
    assert result["num_query_without_match"] == 1 and result["rank1"] == 100.0
    assert per_query_metrics(result["per_query"]) == {"rank1": 100.0, "mAP": 100.0}


def test_mean_over_splits_averages_each_metric():
    runs = [{"split": k, "rank1": r1, "rank5": 90.0, "rank10": 95.0, "rank20": 99.0, "mAP": m, "dataset": "ilidsvid"}
            for k, r1, m in [(0, 80.0, 70.0), (1, 90.0, 80.0), (2, 70.0, 60.0)]]
    mean = mean_over_splits(runs)
    assert (mean["rank1"], mean["mAP"], mean["rank5"]) == (80.0, 70.0, 90.0)
    assert mean["rank1_std"] == pytest.approx(10.0) and mean["splits"] == [0, 1, 2]
    with pytest.raises(ValueError, match="distinct splits"):
        mean_over_splits(runs + runs[:1])


def test_paper_schedule_drops_tenfold_after_epoch_50_and_warmup_ramps():
    factor = epoch_schedule(load_config())
    assert [factor(e) for e in (0, 49, 50, 149)] == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1)]
    warm = epoch_schedule(load_config(None, ["schedule.warmup_epochs=4"]))
    assert [warm(e) for e in range(5)] == [0.2, 0.4, 0.6, 0.8, 1.0]
    cosine = epoch_schedule(load_config(None, ["schedule.name=cosine", "train.epochs=10"]))
    assert cosine(0) == 1.0 and cosine(5) == pytest.approx(0.5) and cosine(10) == pytest.approx(0.0)


def test_supervised_strategy_is_evaluated_with_test_frame_keypoints(tiny_world, tmp_path):
    """Its part features are keypoint windows, so test clips need keypoints too."""
    result = train(tiny_config(tiny_world, "model.strategy=supervised", "train.epochs=1"), tmp_path,
                   progress=False)
    metrics = evaluate(result.paths["last"], progress=False)
    assert metrics["strategy"] == "supervised" and metrics["mAP"] == result.final["mAP"]
    # the checkpoint's evaluation keeps the per-query arrays; metrics.jsonl lines do not
    assert metrics["per_query"] == result.final["per_query"]
    assert per_query_metrics(result.final["per_query"])["mAP"] == pytest.approx(result.final["mAP"])
    assert "per_query" not in (tmp_path / "metrics.jsonl").read_text()


def test_split_protocol_trains_one_run_per_split_on_pku(tmp_path):
    """The real PKU subset with its MediaPipe keypoints: one tiny run per split, averaged."""
    from ssn3dlib.engine import train_splits
    from ssn3dlib.paths import data_root

    if not (data_root() / "pku_reid_subset" / "images").is_dir():
        pytest.skip("the PKU-Reid subset is not under the data root")
    tiny = ["train.epochs=1", "train.max_steps_per_epoch=2", "train.num_threads=1", "train.tensorboard=false",
            "data.size=[64, 32]", "data.num_workers=0", "eval.num_workers=0", "model.hidden=16",
            "model.part_dim=8", "model.embedding_dim=32"]
    summary = train_splits("pku_cpu", tmp_path, splits=[0, 1], progress=False, overrides=tiny)
    assert summary["splits"] == [0, 1] and (tmp_path / "splits.json").is_file()
    per_split = summary["per_split"]
    assert summary["mAP"] == pytest.approx((per_split[0]["mAP"] + per_split[1]["mAP"]) / 2)
    assert all((tmp_path / f"split{k}" / "checkpoints" / "last.pt").is_file() for k in (0, 1))
    assert load_config(tmp_path / "split1" / "config.yaml").data.options["split"] == 1


def test_run_title_names_model_dataset_split_and_seed():
    assert run_title(load_config("synthetic_tiny")) == "SSN3D semi-supervised, λ=0.1 · synthetic world · seed 0"
    # A split run (PKU over its protocol's splits) says which split the figure shows.
    split = run_title(load_config("pku_cpu", ["data.options.split=3", "train.seed=2", "model.name=tp"]))
    assert split.endswith("PKU-Reid subset, split 3 · seed 2") and split.startswith("TP")
