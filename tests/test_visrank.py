"""Ranked lists (`ssn3d visrank`): the evaluation's order and junk rule, drawn per query."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from ssn3dlib.cli import main
from ssn3dlib.data.tracklets import Tracklet
from ssn3dlib.metrics import evaluate_rank
from ssn3dlib.reporting.visrank import VERDICT_COLORS, choose_queries, ranked_lists, visrank_figure

from data_fixtures import write_image

# Two queries (pid 1 cam 1, pid 2 cam 1) against six gallery tracklets.
G_PIDS = np.array([1, 2, 1, 3, 2, 1])
G_CAMS = np.array([1, 2, 2, 2, 1, 2])
Q_PIDS, Q_CAMS = np.array([1, 2]), np.array([1, 1])
DIST = np.array([[0.1, 0.5, 0.9, 0.3, 0.7, 0.2],     # 0 (junk: pid 1 cam 1), 5 (match), 3, 1, 4, 2 (match)
                 [0.4, 0.6, 0.2, 0.1, 0.3, 0.8]],    # 3, 2, 4 (junk: pid 2 cam 1), 0, 1 (match), 5
                dtype=np.float32)


def test_a_hand_built_ranking_is_ordered_and_judged_as_the_evaluation_does():
    first, second = ranked_lists(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, queries=[0, 1], topk=6)
    assert first.gallery.tolist() == [0, 5, 3, 1, 4, 2]
    assert first.verdict == ("junk", "match", "false", "false", "false", "match")
    assert first.rank.tolist() == [0, 1, 2, 3, 4, 5]          # junk takes no rank
    assert first.distance.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
    assert second.gallery.tolist() == [3, 2, 4, 0, 1, 5]
    assert second.verdict == ("false", "false", "junk", "false", "match", "false")
    assert second.rank.tolist() == [1, 2, 0, 3, 4, 5]
    # the first green is where the evaluation puts the first true match
    result = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert [first.first_match_rank, second.first_match_rank] == result.first_match_rank.tolist() == [1, 4]
    assert len(ranked_lists(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, queries=[0], topk=2)[0].gallery) == 2


def test_queries_are_chosen_worst_first_at_random_or_by_name():
    result = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    worst = choose_queries(result.first_match_rank, result.average_precision, "worst", 4)
    assert worst == [1, 0]
    no_match = np.array([3, 0, 1])                   # query 1 has no true match: never "worst"
    assert choose_queries(no_match, np.array([0.3, 1.0]), "worst", 4) == [0, 2]
    picked = choose_queries(result.first_match_rank, result.average_precision, "random", 1, seed=3)
    assert len(picked) == 1 and picked[0] in (0, 1)
    assert choose_queries(no_match, None, "B,0", names=["A", "B", "C"]) == [1, 0]
    with pytest.raises(ValueError, match="no query 'Z'"):
        choose_queries(no_match, None, "Z", names=["A", "B", "C"])
    with pytest.raises(ValueError, match="topk must be >= 1"):
        ranked_lists(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, topk=0)


def test_the_figure_frames_each_gallery_tracklet_by_its_verdict(tmp_path):
    def tracklet(name, pid, cam, n=4):
        paths = []
        for f in range(n):
            write_image(tmp_path / name / f"{f}.png", seed=f)
            paths.append(str(tmp_path / name / f"{f}.png"))
        return Tracklet(tuple(paths), pid, cam, name)

    query = [tracklet(f"q{i}", p, c) for i, (p, c) in enumerate(zip(Q_PIDS, Q_CAMS))]
    gallery = [tracklet(f"g{i}", p, c, n=2 + i) for i, (p, c) in enumerate(zip(G_PIDS, G_CAMS))]
    lists = ranked_lists(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, queries=[0, 1], topk=3)
    fig = visrank_figure(lists, query, gallery, frames=2, title="hand-built")
    axes = np.array(fig.axes).reshape(2, 4)
    edge = [[ax.spines["top"].get_edgecolor() for ax in row[1:]] for row in axes]
    expected = [[VERDICT_COLORS[v] for v in r.verdict] for r in lists]
    from matplotlib.colors import to_rgba

    assert edge == [[to_rgba(c) for c in row] for row in expected]
    assert axes[0, 1].get_title().startswith("junk") and axes[0, 2].get_title().startswith("rank 1  d=0.2")
    assert "query q1" in axes[1, 0].get_title() and "1st match: rank 4" in axes[1, 0].get_title()
    assert axes[0, 1].get_images()[0].get_array().shape == (96, 2 * 48, 3)   # two frames side by side


def test_visrank_command_writes_the_png(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "ranks.png"
    assert main(["visrank", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--topk", "3",
                 "--num-queries", "2", "--quiet"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("query")]
    assert len(lines) == 2 and all("top 3:" in line for line in lines)


def test_visrank_refuses_a_broken_folder(tiny_checkpoint, tiny_world, tmp_path, capsys):
    broken = tmp_path / "world"
    shutil.copytree(tiny_world, broken)
    frame = sorted((broken / "query").rglob("*.png"))[0]
    frame.write_bytes(b"not a png")
    assert main(["visrank", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "x.png"), "--quiet",
                 f"data.root={broken}", "data.world=null"]) == 2
    assert "cannot decode frame" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["visrank", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "x.png"), "--quiet",
                 f"data.root={empty}", "data.world=null"]) == 2
    assert "world.yaml missing" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_visrank_refuses_a_wrong_checkpoint(tiny_checkpoint, tmp_path, capsys):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    plain = tmp_path / "state_dict.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    for path, message in ((text, "is not a readable SSN3D checkpoint"), (plain, "not an SSN3D engine checkpoint"),
                          (tmp_path / "missing.pt", "does not exist")):
        assert main(["visrank", "--checkpoint", str(path), "--out", str(tmp_path / "x.png")]) == 2
        assert message in capsys.readouterr().err
    assert main(["visrank", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "x.png"),
                 "--queries", "nobody", "--quiet"]) == 2
    assert "no query 'nobody'" in capsys.readouterr().err


def test_the_report_shows_one_ranked_list_per_benchmark_checkpoint(tiny_checkpoint, tmp_path, monkeypatch):
    from ssn3dlib.reporting.report import render_report, visrank_figures

    monkeypatch.setenv("SSN3D_REPORTS", str(tmp_path))
    run = "synthetic_world_ssn3d_semi-supervised_shared_lambda0.1_seed0"
    target = tmp_path / "runs" / "cpu" / "benchmark" / run / "checkpoints" / "last.pt"
    target.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, target)
    gone = tmp_path / "runs" / "cpu" / "benchmark" / run.replace("synthetic_world", "mars") / "checkpoints"
    gone.mkdir(parents=True)
    (gone / "last.pt").write_text("truncated")              # skipped with its reason, not fatal
    assert visrank_figures("cpu", topk=2, count=1) == [tmp_path / "visrank" / f"{run}.png"]
    text = render_report("cpu", tmp_path)
    assert "## Ranked lists of the worst queries" in text and f"(visrank/{run}.png)" in text


def test_a_dataset_trained_over_its_splits_is_shown_by_its_first_split(tiny_checkpoint, tmp_path, monkeypatch):
    """PKU with all_splits keeps one run folder per split (RUN/splitK/checkpoints/last.pt); the
    report's views take split 0 instead of leaving the dataset out."""
    from ssn3dlib.reporting.report import benchmark_checkpoints

    monkeypatch.setenv("SSN3D_REPORTS", str(tmp_path))
    root = tmp_path / "runs" / "cpu" / "benchmark"
    flat = root / "synthetic_world_ssn3d_semi-supervised_shared_lambda0.1_seed0" / "checkpoints" / "last.pt"
    split = root / "pku_reid_subset_ssn3d_semi-supervised_shared_lambda0.1_seed0"
    empty = root / "mars_ssn3d_semi-supervised_shared_lambda0.1_seed0"      # no checkpoint yet: left out
    for path in (flat, split / "split0" / "checkpoints" / "last.pt", split / "split1" / "checkpoints" / "last.pt"):
        path.parent.mkdir(parents=True)
        shutil.copy(tiny_checkpoint, path)
    empty.mkdir()
    assert benchmark_checkpoints("cpu") == [(split.name, split / "split0" / "checkpoints" / "last.pt"),
                                            (flat.parents[1].name, flat)]
