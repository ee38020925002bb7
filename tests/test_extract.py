"""Features out (`ssn3d extract`): a user's folder or a dataset, one embedding per tracklet as
the evaluation computes it."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from ssn3dlib.cli import main
from ssn3dlib.data.clip_dataset import read_frame
from ssn3dlib.data.folder import camera_of, read_tracklet_folder
from ssn3dlib.data.layout import DatasetLayoutError
from ssn3dlib.data.temporal import evaluation_clip_indices
from ssn3dlib.data.transforms import ClipTransform
from ssn3dlib.engine import train
from ssn3dlib.engine.evaluator import load_trained
from ssn3dlib.engine.features import load_features

from data_fixtures import write_image
from engine_helpers import tiny_config


def _frames(folder, numbers):
    for n in numbers:
        write_image(folder / f"frame{n}.jpg", seed=n)


def test_a_hand_built_folder_is_read_in_either_layout(tmp_path):
    _frames(tmp_path / "ids" / "12" / "walk_cam3", [10, 9, 1])
    _frames(tmp_path / "ids" / "7" / "c1_t00", [2])
    tracklets = read_tracklet_folder(tmp_path / "ids")
    assert [(t.name, t.pid, t.camid) for t in tracklets] == [("7/c1_t00", 7, 1), ("12/walk_cam3", 12, 3)]
    assert [p.rsplit("/", 1)[1] for p in tracklets[1].frames] == ["frame1.jpg", "frame9.jpg", "frame10.jpg"]
    _frames(tmp_path / "tracks" / "b", [1, 2])
    _frames(tmp_path / "tracks" / "a", [3])
    assert [(t.name, t.pid, t.camid, len(t)) for t in read_tracklet_folder(tmp_path / "tracks")] == \
        [("a", -1, -1, 1), ("b", -1, -1, 2)]
    _frames(tmp_path / "named" / "bob" / "t1", [1])
    _frames(tmp_path / "named" / "alice" / "t1", [1])
    assert [(t.name, t.pid) for t in read_tracklet_folder(tmp_path / "named")] == [("alice/t1", 0), ("bob/t1", 1)]
    assert [camera_of(n) for n in ("0006_c2_t00", "camera_4", "C7", "disc1", "track12")] == [2, 4, 7, -1, -1]


@pytest.mark.parametrize("build, message", [
    (lambda root: _frames(root, [1]), "holds frames directly"),
    (lambda root: root.mkdir(), "holds no folders"),
    (lambda root: (_frames(root / "a", [1]), (root / "b" / "x").mkdir(parents=True)), "mixes tracklet folders"),
    (lambda root: (root / "1").mkdir(parents=True), "holds no tracklet folders"),
    (lambda root: (root / "1" / "t").mkdir(parents=True), "holds no frames"),
    (lambda root: None, "does not exist"),
])
def test_other_layouts_are_refused_with_the_expected_ones(tmp_path, build, message):
    build(tmp_path / "data")
    with pytest.raises(DatasetLayoutError, match=message) as err:
        read_tracklet_folder(tmp_path / "data")
    assert "<root>/<identity>/<tracklet>/<frames>" in str(err.value)


def test_extract_averages_the_clips_of_every_tracklet_as_the_evaluation(tiny_checkpoint, tiny_world, tmp_path):
    out = tmp_path / "query.npz"
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--images", str(tiny_world / "query"),
                 "--out", str(out), "--quiet", "--batch-size", "1"]) == 0
    f = load_features(out)
    trained = load_trained(tiny_checkpoint, device="cpu")
    tracklets = read_tracklet_folder(tiny_world / "query")
    assert f["name"].tolist() == [t.name for t in tracklets] and f["camid"].tolist() == [t.camid for t in tracklets]
    assert f["pid"].tolist() == [t.pid for t in tracklets] and f["identity"][0] == f"{tracklets[0].pid:04d}"
    assert f["tracklet_frames"][0] == [p[len(str(tiny_world / "query")) + 1:] for p in tracklets[0].frames]
    # by hand: every frame once, in clips of eval.clip_len, their embeddings averaged
    config, track = trained.config, tracklets[0]
    transform = ClipTransform.test(tuple(config.data.size))
    with torch.no_grad():
        clips = [trained.model(transform.apply([read_frame(track.frames[i]) for i in idx])[None]).embedding[0]
                 for idx in evaluation_clip_indices(len(track), config.eval.clip_len)]
    assert f["features"][0] == pytest.approx(torch.stack(clips).mean(0).numpy(), abs=1e-5)
    # the same tracklets read as the dataset's query split: the same features
    both = tmp_path / "dataset.npz"
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--dataset", "synthetic_world", "--root",
                 str(tiny_world), "--splits", "query,gallery", "--out", str(both), "--quiet"]) == 0
    d = load_features(both)
    assert d["split"].tolist().count("query") == len(tracklets) and set(d["split"]) == {"query", "gallery"}
    assert np.allclose(d["features"][:len(tracklets)], f["features"], atol=1e-5)
    assert d["meta"]["run"]["strategy"] == "semi-supervised" and d["meta"]["source"] == "synthetic_world"


def test_the_supervised_strategy_takes_keypoints_from_a_table(tiny_world, tmp_path, capsys):
    checkpoint = train(tiny_config(tiny_world, "model.strategy=supervised", "train.epochs=1",
                                   "train.max_steps_per_epoch=1", "train.eval_every=0"), tmp_path / "run",
                       progress=False).paths["last"]
    args = ["extract", "--checkpoint", str(checkpoint), "--images", str(tiny_world / "query"), "--quiet"]
    assert main(args + ["--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert "give a keypoint table" in err and "with --keypoints" in err
    rows = (tiny_world / "keypoints.csv").read_text().splitlines()
    table = tmp_path / "query_keypoints.csv"
    table.write_text("\n".join([rows[0]] + [r[len("query/"):] for r in rows if r.startswith("query/")]) + "\n")
    assert main(args + ["--keypoints", str(table), "--out", str(tmp_path / "folder.npz")]) == 0
    assert main(["extract", "--checkpoint", str(checkpoint), "--dataset", "synthetic_world", "--root",
                 str(tiny_world), "--splits", "query", "--out", str(tmp_path / "own.npz"), "--quiet"]) == 0
    assert np.allclose(load_features(tmp_path / "folder.npz")["features"],
                       load_features(tmp_path / "own.npz")["features"], atol=1e-5)


def test_extract_refuses_a_broken_folder(tiny_checkpoint, tiny_world, tmp_path, capsys):
    broken = tmp_path / "query"
    shutil.copytree(tiny_world / "query", broken)
    loose = next(broken.rglob("*.png"))
    shutil.copy(loose, broken / "loose.png")
    args = ["extract", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "f.npz"), "--quiet"]
    assert main(args + ["--images", str(broken)]) == 2
    assert "holds frames directly" in capsys.readouterr().err
    (broken / "loose.png").unlink()
    loose.write_bytes(b"broken")
    assert main(args + ["--images", str(broken)]) == 2
    assert "cannot decode frame" in capsys.readouterr().err
    assert main(args + ["--dataset", "no_such_set"]) == 2
    assert "unknown dataset 'no_such_set'" in capsys.readouterr().err
    assert main(args + ["--dataset", "synthetic_world", "--root", str(broken)]) == 2
    assert "world.yaml missing" in capsys.readouterr().err
    assert not (tmp_path / "f.npz").exists()


def test_extract_refuses_a_wrong_checkpoint_or_output(tiny_checkpoint, tiny_world, tmp_path, capsys):
    plain = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, plain)
    args = ["--images", str(tiny_world / "query"), "--quiet"]
    assert main(["extract", "--checkpoint", str(plain), "--out", str(tmp_path / "f.npz"), *args]) == 2
    assert "not an SSN3D engine checkpoint" in capsys.readouterr().err
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "f.parquet"), *args]) == 2
    assert "written as .npz" in capsys.readouterr().err
    assert main(["extract", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "f.npz"), *args,
                 "--batch-size", "0"]) == 2
    assert "batch size must be >= 1" in capsys.readouterr().err
