"""The MOTChallenge reader, detector-box offsets and tracklet crops (ssn3dlib.data.mot)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ssn3dlib.data import mot
from ssn3dlib.data.layout import DatasetLayoutError
from ssn3dlib.paths import data_root

from data_fixtures import build_mot

# two people in SEQ-A over 3 frames (id 2 too short for the height rule in frame 3), one in SEQ-B
SEQUENCES = {
    "SEQ-A": [[(1, 4, 2, 10, 60, 1.0), (2, 30, 5, 12, 55, 0.9)],
              [(1, 5, 2, 10, 60, 1.0), (2, 31, 5, 12, 55, 0.2)],     # id 2 too occluded here
              [(1, 6, 2, 10, 60, 1.0), (2, 32, 5, 12, 40, 1.0)]],    # and too small here
    "SEQ-B": [[(7, 10, 0, 20, 52, 0.5)], [(7, 11, 0, 20, 52, 0.5)]],
}


@pytest.fixture
def mot_tree(tmp_path) -> Path:
    return build_mot(tmp_path / "mot", SEQUENCES, size=(64, 70))


def test_reader_gives_frames_in_order_boxes_and_the_detections_of_present_frames(mot_tree):
    seqs = mot.read_mot(mot_tree)
    assert [s.name for s in seqs] == ["SEQ-A", "SEQ-B"]
    a = seqs[0]
    assert [Path(p).name for p in a.frames] == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert a.image_size == (64, 70) and a.length == 13 and a.frame_rate == 30
    assert len(a.gt) == 6 and len(a.det) == 6           # the detection on frame 8 (no image) is dropped
    people = a.pedestrians()
    assert list(zip(people["frame"], people["id"])) == [(1, 1), (1, 2), (2, 1), (3, 1)]


def test_iou_of_hand_computed_boxes():
    iou = mot.iou_matrix([[0, 0, 10, 10]], [[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 1.0]])


def test_detections_match_one_to_one_and_their_offsets_are_in_box_heights(mot_tree):
    seq = mot.read_mot(mot_tree)[0]
    matches = mot.match_detections(seq)
    assert list(zip(matches["frame"], matches["id"])) == [(1, 1), (1, 2), (2, 1), (3, 1)]
    # a 10 x 60 box shifted by 1 px in x and y: intersection 9 x 59, union 2 x 600 - 531
    np.testing.assert_allclose(matches.loc[0, "iou"], 531 / 669)
    errors = mot.box_errors(matches)
    assert errors["boxes"] == 4
    np.testing.assert_allclose(errors["mean_dx"], np.mean([1 / 60, 1 / 55, 1 / 60, 1 / 60]))
    np.testing.assert_allclose(errors["mean_log_scale"], 0.0, atol=1e-12)
    assert mot.match_detections(seq, min_iou=0.9).empty
    with pytest.raises(ValueError, match="no matched boxes"):
        mot.box_errors(mot.match_detections(seq, min_iou=0.9))


def test_tracklets_are_crops_of_each_person_in_frame_order_written_once(mot_tree, tmp_path):
    seqs = mot.read_mot(mot_tree)
    out = tmp_path / "crops"
    tracks = mot.cut_tracklets(seqs, out)
    assert [(t.name, t.pid, t.camid, len(t)) for t in tracks] == [
        ("SEQ-A_0001", 0, 0, 3), ("SEQ-B_0007", 1, 1, 2)]     # id 2 kept one frame only: below min_frames
    first = Path(tracks[0].frames[0])
    assert first == out / "SEQ-A" / "0001" / "000001.jpg"
    with Image.open(first) as crop:
        assert crop.size == (10, 60)
    with Image.open(seqs[0].frames[0]) as frame:
        box = np.asarray(frame.convert("RGB").crop((4, 2, 14, 62)), dtype=float)
    with Image.open(first) as crop:                           # the same pixels, up to JPEG at quality 95
        assert np.abs(np.asarray(crop, dtype=float) - box).mean() < 12
    stamp = first.stat().st_mtime_ns
    assert mot.cut_tracklets(seqs, out) == tracks and first.stat().st_mtime_ns == stamp
    assert [len(t) for t in mot.cut_tracklets(seqs, tmp_path / "all", min_frames=1)] == [3, 1, 2]
    boxes = mot.crop_boxes(seqs, crops_root=out)
    assert (out / boxes.loc[0, "image"]).is_file() and len(boxes) == 6


def test_crop_box_clips_to_the_frame_and_refuses_a_box_outside_it():
    assert mot.crop_box((-3.4, 5.6, 10, 20), (64, 48)) == (0, 6, 7, 26)
    with pytest.raises(ValueError, match="outside"):
        mot.crop_box((70, 5, 10, 20), (64, 48))


@pytest.mark.parametrize("break_tree, message", [
    (lambda s: (s / "seqinfo.ini").unlink(), "no seqinfo.ini"),
    (lambda s: (s / "seqinfo.ini").write_text("[Sequence]\nname=SEQ-A\n"), "lacks imdir"),
    (lambda s: (s / "img1" / "000002.jpg").unlink(), "frame 000002 is missing"),
    (lambda s: (s / "img1" / "000003.jpg").unlink(), "rows fall on frames beyond the 2"),
    (lambda s: (s / "img1" / "frame4.jpg").write_bytes(b""), "does not follow the naming"),
    (lambda s: shutil.rmtree(s / "gt"), "no gt/gt.txt"),
    (lambda s: (s / "gt" / "gt.txt").write_text("1,1,4,2,10,60\n"), "rows have 6 columns"),
    (lambda s: (s / "gt" / "gt.txt").write_text("1,1,4,2,10,60,1,1,1.0\n1,2,x,2,10,60,1,1,1.0\n"),
     "line 2 is not all numbers"),
    (lambda s: (s / "det" / "det.txt").write_text("1,-1,4,2,0,60,0.9\n"), "box without area"),
])
def test_a_broken_tree_is_refused_naming_the_problem(mot_tree, break_tree, message):
    break_tree(mot_tree / "train" / "SEQ-A")
    with pytest.raises(DatasetLayoutError, match=message):
        mot.read_mot(mot_tree)


def test_a_root_without_the_split_or_sequences_is_refused(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no train/ folder"):
        mot.read_mot(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetLayoutError, match="holds no sequence folders"):
        mot.read_mot(tmp_path)


MOT17_MINI = data_root() / "mot17_mini"


@pytest.mark.skipif(not MOT17_MINI.is_dir(), reason=f"the real MOT17 frames are not at {MOT17_MINI}")
def test_the_real_mot17_frames_match_their_manifest(tmp_path):
    from ssn3dlib.data.manifests import MANIFEST_DIR

    totals = yaml.safe_load((MANIFEST_DIR / "mot17_mini.yaml").read_text())["totals"]
    seqs = mot.read_mot(MOT17_MINI)
    assert len(seqs) == totals["sequences"] and sum(len(s.frames) for s in seqs) == totals["frames"]
    assert sum(len(s.det) for s in seqs) == totals["detections_on_present_frames"]
    people = [s.pedestrians() for s in seqs]
    assert sum(len(p) for p in people) == totals["pedestrian_crops"]
    assert sum(p["id"].nunique() for p in people) == totals["pedestrian_identities"]
    matches = [mot.match_detections(s) for s in seqs]
    assert sum(len(m) for m in matches) == totals["matched_detections"]
