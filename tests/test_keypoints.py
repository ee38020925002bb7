"""Keypoint tables, their mapping to the 9 benchmark parts and the 6 pedestrian parts, and the
simulated pose failures of the supervised-vs-pose-errors check."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ssn3dlib.data.keypoints import (
    PART_SETS,
    best_labelled_frames,
    drop_pose_frames,
    image_parts,
    parts_by_image,
    pose_failure_rate,
    read_keypoint_table,
)
from ssn3dlib.paths import data_root

POSE = {"nose": (10, 5, 0.9), "left_ear": (8, 5, 0.8), "right_ear": (12, 5, 0.7),
        "left_shoulder": (6, 20, 1.0), "right_shoulder": (14, 20, 0.9),
        "left_elbow": (4, 30, 0.6), "right_elbow": (16, 30, 0.2),
        "left_wrist": (3, 40, 0.3), "right_wrist": (17, 40, 0.8),
        "left_hip": (8, 50, 1.0), "right_hip": (12, 50, 0.95),
        "left_knee": (8, 70, 0.7), "right_knee": (12, 70, 0.6),
        "left_ankle": (8, 90, 0.5), "right_ankle": (12, 90, 0.4)}


def test_benchmark_parts_are_means_of_their_sources():
    parts = dict(zip(PART_SETS["benchmark9"], image_parts(POSE, "benchmark9")))
    np.testing.assert_allclose(parts["head"], [10, 5, 0.9])
    np.testing.assert_allclose(parts["body"], [10, 35, 0.9])      # mean of shoulders and hips, min vis
    np.testing.assert_allclose(parts["crotch"], [10, 50, 0.95])
    np.testing.assert_allclose(parts["right_foot"], [12, 90, 0.4])  # ankle when no foot point


def test_pedestrian_parts_pick_the_visible_hand_and_prefer_foot_points():
    pose = dict(POSE, left_foot=(7, 95, 0.9))
    parts = dict(zip(PART_SETS["pedestrian6"], image_parts(pose, "pedestrian6")))
    np.testing.assert_allclose(parts["hand"], [17, 40, 0.8])
    np.testing.assert_allclose(parts["foot1"], [7, 95, 0.9])
    np.testing.assert_allclose(parts["knee2"], [12, 70, 0.6])


def test_missing_sources_make_a_part_invisible():
    pose = {k: v for k, v in POSE.items() if k not in ("nose",)}
    head = image_parts(pose, "benchmark9")[0]
    np.testing.assert_allclose(head, [10, 5, 0.7])                  # falls back to the ears
    pose = {k: v for k, v in pose.items() if "ear" not in k}
    head = image_parts(pose, "benchmark9")[0]
    assert np.isnan(head[0]) and head[2] == 0
    with pytest.raises(ValueError, match="unknown part set"):
        image_parts(POSE, "coco17")


def test_two_best_labelled_frames_by_mean_visibility():
    good, bad = image_parts(POSE, "benchmark9"), image_parts(POSE, "benchmark9").copy()
    bad[:, 2] *= 0.5
    parts = {"f0": bad, "f1": good, "f3": good, "f4": bad}
    assert best_labelled_frames(["f0", "f1", "f2", "f3", "f4"], parts) == ["f1", "f3"]
    assert best_labelled_frames(["f0", "f2"], parts, count=2, min_visibility=0.3) == ["f0"]
    assert best_labelled_frames(["f0", "f2"], parts, count=2) == []  # nothing above 0.5


def test_table_validation(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"image": ["a"], "keypoint": ["nose"], "x": [1.0], "y": [2.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        read_keypoint_table(bad)
    row = {"image": ["a"], "keypoint": ["nose"], "x": [1], "y": [2], "visibility": [1.5]}
    pd.DataFrame(row).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="visibility"):
        read_keypoint_table(bad)


@pytest.mark.skipif(not (data_root() / "pku_reid_subset").is_dir(), reason="shared data absent")
def test_real_mediapipe_table_maps_to_parts():
    table = read_keypoint_table(data_root() / "pku_reid_subset" / "keypoints_mediapipe.csv")
    parts = parts_by_image(table, "benchmark9")
    assert len(parts) == 641
    stacked = np.stack(list(parts.values()))
    visible = stacked[..., 2] > 0.5
    # Heads sit above crotches above feet in upright pedestrian crops (128 px high).
    head_y, crotch_y, foot_y = stacked[:, 0, 1], stacked[:, 2, 1], stacked[:, 7, 1]
    both = visible[:, 0] & visible[:, 2] & visible[:, 7]
    assert both.sum() > 100
    assert np.mean(((head_y < crotch_y) & (crotch_y < foot_y))[both]) > 0.95


@pytest.mark.parametrize("part_set", sorted(PART_SETS))
def test_table_mapping_agrees_with_the_per_image_rules(part_set):
    """parts_by_image works on whole columns; it must give image_parts' answer for every image:
    full poses, fallbacks (ears, ankles), foot points, hand ties, missing parts, duplicates."""
    rng = np.random.default_rng(0)
    poses = {
        "full.png": POSE,
        "no_nose.png": {k: v for k, v in POSE.items() if k != "nose"},
        "nothing_head.png": {k: v for k, v in POSE.items() if k not in ("nose", "left_ear", "right_ear")},
        "feet.png": dict(POSE, left_foot=(7, 95, 0.9), right_foot=(13, 96, 0.2)),
        "hand_tie.png": dict(POSE, left_wrist=(3, 40, 0.5), right_wrist=(17, 40, 0.5)),
        "one_hand.png": {k: v for k, v in POSE.items() if k != "left_wrist"},
        "random.png": {k: (float(rng.uniform(0, 48)), float(rng.uniform(0, 128)), float(rng.uniform()))
                       for k in POSE},
    }
    rows = [(img, k, x, y, v) for img, pose in poses.items() for k, (x, y, v) in pose.items()]
    rows.append(("full.png", "nose", 99.0, 99.0, 0.1))          # a duplicate row: the last one wins
    table = pd.DataFrame(rows, columns=["image", "keypoint", "x", "y", "visibility"])
    mapped = parts_by_image(table, part_set)
    assert sorted(mapped) == sorted(poses)
    for image, pose in poses.items():
        if image == "full.png":
            pose = dict(pose, nose=(99.0, 99.0, 0.1))
        np.testing.assert_array_equal(mapped[image], image_parts(pose, part_set))
    assert parts_by_image(table.iloc[:0], part_set) == {}


# ---------------------------------------------------------------- simulated pose failures

def _table(root, names):
    return {str(root / n): np.array([[1.0 + i, 2.0 + i, 0.9], [3.0, 4.0, 0.6]]) for i, n in enumerate(names)}


def test_pose_failures_remove_whole_frames_the_same_way_wherever_and_in_whatever_order(tmp_path):
    names = [f"p{i:03d}/f{j}.png" for i in range(50) for j in range(8)]
    here = _table(tmp_path / "a", names)
    dropped = drop_pose_frames(here, 0.4, seed=3, image_root=tmp_path / "a")
    gone = [k for k, v in dropped.items() if not v[:, 2].any()]
    assert 0.33 < len(gone) / len(names) < 0.47                       # about the fraction asked for
    for key, parts in dropped.items():
        np.testing.assert_array_equal(parts[:, :2], here[key][:, :2])   # points stay, visibility goes
        assert key in gone or np.array_equal(parts, here[key])
    moved = drop_pose_frames(dict(reversed(_table(tmp_path / "b", names).items())), 0.4, 3, tmp_path / "b")
    assert sorted(Path(k).relative_to(tmp_path / "b") for k, v in moved.items() if not v[:, 2].any()) == \
        sorted(Path(k).relative_to(tmp_path / "a") for k in gone)
    other_seed = drop_pose_frames(here, 0.4, seed=4, image_root=tmp_path / "a")
    assert [k for k, v in other_seed.items() if not v[:, 2].any()] != gone
    assert drop_pose_frames(here, 0.0, 3, tmp_path / "a").keys() == here.keys()
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop_pose_frames(here, 1.0, 3, tmp_path / "a")


def test_pose_failure_rate_counts_images_without_a_row(tmp_path):
    for name in ("a/1.jpg", "a/2.jpg", "b/3.png", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    table = tmp_path / "kp.csv"
    pd.DataFrame({"image": ["a/2.jpg", "a/2.jpg"], "keypoint": ["nose", "left_ear"], "x": [1, 2], "y": [1, 2],
                  "visibility": [0.9, 0.8]}).to_csv(table, index=False)
    assert pose_failure_rate(table, tmp_path) == (2, 3)
    with pytest.raises(FileNotFoundError, match="no images"):
        pose_failure_rate(table, tmp_path / "a" / "missing")


@pytest.mark.skipif(not (data_root() / "pku_reid_subset").is_dir(), reason="shared data absent")
def test_mediapipe_found_nobody_in_the_pku_crops_its_readme_counts():
    root = data_root() / "pku_reid_subset"
    assert pose_failure_rate(root / "keypoints_mediapipe.csv", root) == (1184 - 641, 1184)   # data README


def test_the_engine_drops_the_same_frames_at_training_and_test_time(tiny_world):
    from ssn3dlib.engine import build, load_config

    def keypoints(*overrides):
        config = load_config("synthetic_tiny", [f"data.root={tiny_world}", "model.strategy=supervised", *overrides])
        return config, build.load_keypoints(config, tiny_world)

    _, exact = keypoints()
    config, failed = keypoints("data.keypoint_drop=0.5", "train.seed=1")
    gone = {k for k, v in failed.items() if not v[:, 2].any() and exact[k][:, 2].any()}
    assert 0.3 < len(gone) / len(exact) < 0.7
    assert all(np.array_equal(failed[k], exact[k]) for k in exact if k not in gone and exact[k][:, 2].any())
    test_time = build.evaluation_keypoints(config, build.prepare_dataset(config.data, progress=False))
    assert {k for k, v in test_time.items() if not v[:, 2].any() and exact[k][:, 2].any()} == gone
    with pytest.raises(ValueError, match="keypoint_drop"):
        load_config("synthetic_tiny", ["data.keypoint_drop=1.0"])
