"""MediaPipe pseudo-labelling: letterbox geometry, the table, the comparison, the command.

The geometry and table tests need no MediaPipe. The end-to-end test runs the command with
a Python that has MediaPipe (this one, or the pose environment .venv-pose that
`make pose-env` creates) and skips when there is none.
"""
import importlib.util
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ssn3dlib import REPO_ROOT
from ssn3dlib.cli import main
from ssn3dlib.data.keypoints import COLUMNS, image_parts, read_keypoint_table
from ssn3dlib.data.pseudolabel import (
    POSE_KEYPOINTS,
    Letterbox,
    compare_tables,
    find_images,
    keypoint_table,
    landmark_rows,
    letterbox_image,
    write_keypoint_table,
)
from ssn3dlib.paths import data_root

PKU = data_root() / "pku_reid_subset"
needs_pku = pytest.mark.skipif(not (PKU / "keypoints_mediapipe.csv").is_file(), reason="../shared/data not present")


# -- letterbox geometry ------------------------------------------------------------
def test_pku_crop_is_scaled_3x_and_centred():
    box = Letterbox(48, 128)
    assert box.scale == 3.0 and box.resized == (144, 384) and box.offset == (120, 0)
    assert np.allclose(box.to_canvas([0, 0]), [120, 0])
    assert np.allclose(box.to_canvas([48, 128]), [264, 384])
    assert np.allclose(box.normalised_to_crop([0.5, 0.5]), [24, 64])  # canvas centre = crop centre


def test_landscape_crop_is_padded_above_and_below():
    box = Letterbox(200, 100)
    assert box.resized == (384, 192) and box.offset == (0, 96)
    assert np.allclose(box.to_crop([384, 288]), [200, 100])


@pytest.mark.parametrize("width,height", [(48, 128), (64, 128), (33, 97), (300, 120)])
def test_canvas_and_crop_coordinates_round_trip(width, height):
    box = Letterbox(width, height)
    points = np.random.default_rng(0).uniform(0, 1, (50, 2)) * [width, height]
    assert np.allclose(box.to_crop(box.to_canvas(points)), points)
    assert np.allclose(box.normalised_to_crop(box.to_canvas(points) / box.canvas), points)
    # the crop never leaves the canvas
    (w, h), (x0, y0) = box.resized, box.offset
    assert 0 <= x0 and x0 + w <= box.canvas and 0 <= y0 and y0 + h <= box.canvas


def test_letterbox_refuses_an_empty_crop():
    with pytest.raises(ValueError, match="positive sizes"):
        Letterbox(0, 128)


def _opencv_imports() -> bool:
    """OpenCV may be installed (deep-sort-realtime brings it) yet fail to import (no libGL)."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _opencv_imports(), reason="OpenCV comes with mediapipe (.venv-pose)")
def test_letterbox_image_pastes_the_resized_crop_on_black():
    canvas = letterbox_image(np.full((128, 48, 3), 200, np.uint8))
    assert canvas.shape == (384, 384, 3)
    assert (canvas[:, :120] == 0).all() and (canvas[:, 264:] == 0).all() and (canvas[:, 120:264] == 200).all()
    with pytest.raises(ValueError, match="uint8 RGB"):
        letterbox_image(np.zeros((128, 48), np.uint8))


# -- the table ----------------------------------------------------------------------
def fake_landmarks(box, shift=0.0):
    """Landmarks at known crop points (i, 2i) with visibility i/20, as fractions of the canvas."""
    crop = np.array([[i + shift, 2 * i] for i in range(len(POSE_KEYPOINTS))], dtype=float)
    norm = box.to_canvas(crop) / box.canvas
    return {k: (norm[i, 0], norm[i, 1], i / 20) for i, k in enumerate(POSE_KEYPOINTS)}


def test_landmark_rows_map_back_to_crop_pixels_in_table_order():
    box = Letterbox(48, 128)
    rows = landmark_rows("images/001/01_1.jpg", fake_landmarks(box), box)
    assert [r[1] for r in rows] == list(POSE_KEYPOINTS)
    assert all(r[0] == "images/001/01_1.jpg" for r in rows)
    assert np.allclose([(r[2], r[3], r[4]) for r in rows],
                       [(i, 2 * i, i / 20) for i in range(len(POSE_KEYPOINTS))])


def test_landmark_rows_need_every_keypoint():
    box = Letterbox(48, 128)
    marks = fake_landmarks(box)
    del marks["left_ankle"]
    with pytest.raises(ValueError, match="left_ankle"):
        landmark_rows("a.jpg", marks, box)


def test_table_rounds_like_the_reference_and_round_trips(tmp_path):
    table = keypoint_table([("a.jpg", "nose", 25.4949, 11.9012, 0.97649), ("a.jpg", "left_ear", 1.004, 2.0, 1.0000001)])
    assert table["x"].tolist() == [25.49, 1.0]
    assert table["y"].tolist() == [11.9, 2.0] and table["visibility"].tolist() == [0.976, 1.0]
    out = write_keypoint_table(table, tmp_path / "sub" / "kp.csv")
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    pd.testing.assert_frame_equal(read_keypoint_table(out), table)
    assert not list((tmp_path / "sub").glob("*.partial"))


def test_writing_a_table_without_the_columns_is_refused(tmp_path):
    with pytest.raises(ValueError, match="visibility"):
        write_keypoint_table(pd.DataFrame({"image": ["a"], "keypoint": ["nose"], "x": [1], "y": [2]}),
                             tmp_path / "kp.csv")


def test_pose_keypoints_give_every_benchmark_and_pedestrian_part():
    points = {k: (float(i), float(i), 1.0) for i, k in enumerate(POSE_KEYPOINTS)}
    for part_set in ("benchmark9", "pedestrian6"):
        parts = image_parts(points, part_set)
        assert np.isfinite(parts).all() and (parts[:, 2] == 1).all(), part_set


@needs_pku
def test_pose_keypoints_are_the_reference_table_keypoints_in_order():
    ref = pd.read_csv(PKU / "keypoints_mediapipe.csv")
    first = ref[ref["image"] == ref["image"].iloc[0]]
    assert tuple(first["keypoint"]) == POSE_KEYPOINTS


def test_find_images_lists_relative_sorted_paths(tmp_path):
    for rel in ("b/2.jpg", "a/1.jpg", "a/skip.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert find_images(tmp_path, "**/*.jpg") == ["a/1.jpg", "b/2.jpg"]
    with pytest.raises(FileNotFoundError, match="--glob"):
        find_images(tmp_path, "**/*.bmp")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_images(tmp_path / "nowhere", "*.jpg")


# -- comparison ------------------------------------------------------------------------
def test_compare_tables_by_hand():
    ref = keypoint_table([("a", "nose", 0, 0, 0.2), ("a", "left_ear", 10, 10, 0.9),
                          ("b", "nose", 5, 5, 0.5), ("c", "nose", 1, 1, 0.1)])
    mine = keypoint_table([("a", "nose", 3, 4, 0.3), ("a", "left_ear", 10, 10, 0.8),
                           ("b", "nose", 5, 6, 0.6), ("d", "nose", 0, 0, 0.1)])
    c = compare_tables(mine, ref)
    assert (c["images_mine"], c["images_reference"], c["images_both"]) == (3, 3, 2)
    assert c["per_keypoint_median_px"] == {"left_ear": 0.0, "nose": 3.0}  # median of 5 and 1
    assert c["median_distance_px"] == 1.0                                   # median of 5, 0, 1
    assert c["visibility_corr"] == pytest.approx(np.corrcoef([0.3, 0.8, 0.6], [0.2, 0.9, 0.5])[0, 1])


# -- the command ---------------------------------------------------------------------
def _pose_python():
    """A Python with MediaPipe: this one, else the pose environment, else None."""
    if importlib.util.find_spec("mediapipe") is not None:
        return sys.executable
    candidate = REPO_ROOT / ".venv-pose" / "bin" / "python"
    return str(candidate) if candidate.is_file() else None


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is importable here")
def test_command_without_mediapipe_names_the_fix(tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(b"")
    code = main(["data", "pseudolabel", "--images", str(tmp_path), "--out", str(tmp_path / "kp.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "make pose-env" in err and ".venv-pose/bin/python -m ssn3dlib" in err
    assert not (tmp_path / "kp.csv").exists()


def test_command_refuses_to_overwrite_a_table(tmp_path, capsys):
    (tmp_path / "kp.csv").write_text("keep")
    code = main(["data", "pseudolabel", "--images", str(tmp_path), "--out", str(tmp_path / "kp.csv")])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "kp.csv").read_text() == "keep"


@needs_pku
@pytest.mark.skipif(_pose_python() is None, reason="no MediaPipe here and no .venv-pose (run `make pose-env`)")
def test_command_reproduces_the_reference_table(tmp_path):
    """Three identities (48 crops): the same crops get a pose, at the same points."""
    out = tmp_path / "kp.csv"
    result = subprocess.run([_pose_python(), "-m", "ssn3dlib", "data", "pseudolabel", "--images", str(PKU),
                             "--glob", "images/00[1-4]/*.jpg", "--out", str(out)],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    mine = read_keypoint_table(out)
    ref = read_keypoint_table(PKU / "keypoints_mediapipe.csv")
    ref = ref[ref["image"].str.match(r"images/00[1-4]/")]
    c = compare_tables(mine, ref)
    assert c["images_mine"] == c["images_reference"] == c["images_both"] > 10
    # Identical on the machine that made the reference; MediaPipe's XNNPACK kernels round by CPU, and an
    # AMD EPYC without AVX-512 moves points by a median 0.02-0.14 px per keypoint (crops are 48 px wide).
    # A different letterbox or resampling moves them by pixels, and changes which crops get a pose.
    assert max(c["per_keypoint_median_px"].values()) < 0.25
    assert c["visibility_corr"] > 0.999
