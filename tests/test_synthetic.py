"""The synthetic world: determinism, the misalignment knob, keypoints, the tree and its reader."""
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from ssn3dlib.data.synthetic import (
    KEYPOINT_NAMES,
    WorldConfig,
    generate_world,
    plan_world,
    read_world,
    render_identity_frames,
)
from ssn3dlib.data.synthetic.misalignment import box_track
from ssn3dlib.data.synthetic.pedestrian import MUTABLE_ATTRIBUTES

SMALL = dict(num_identities=6, num_cameras=2, tracklets_per_identity_per_camera=(1, 2),
             frames_per_tracklet=(5, 8), static_crops=4, similar_identity_fraction=0.34)
H, W = 128, 64


@pytest.fixture(scope="module")
def config():
    return WorldConfig(seed=3, **SMALL)


@pytest.fixture(scope="module")
def world(tmp_path_factory, config) -> Path:
    return generate_world(config, tmp_path_factory.mktemp("synthetic") / "world", progress=False, workers=1)


@pytest.fixture
def broken(world, tmp_path) -> Path:
    """A private copy of the world to damage."""
    return Path(shutil.copytree(world, tmp_path / "copy"))


def tree_hashes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def motion(frames, name="neck") -> float:
    """Mean frame-to-frame displacement of one keypoint, crop pixels."""
    xy = np.array([f.keypoints[name][:2] for f in frames])
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).mean())


# ---------------------------------------------------------------------------- determinism

def test_same_config_gives_identical_bytes_whatever_the_workers(world, config, tmp_path):
    again = generate_world(config, tmp_path / "again", progress=False, workers=2)
    assert tree_hashes(again) == tree_hashes(world)


def test_a_world_being_written_elsewhere_is_waited_for_not_overwritten(world, config, tmp_path):
    """Another process holds the world's lock while it writes (a study's parallel runs on an empty
    cache): generate_world waits, then finds the finished world and keeps it as it is."""
    from concurrent.futures import ThreadPoolExecutor

    from filelock import FileLock

    root = tmp_path / "shared"
    with ThreadPoolExecutor(1) as pool, FileLock(str(tmp_path / ".shared.lock")):
        waiting = pool.submit(generate_world, config, root, False, 1)
        time.sleep(0.3)
        assert not waiting.done() and not root.exists()      # it waits instead of writing
        shutil.copytree(world, root)                           # the other writer finishes
        written = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    assert waiting.result(timeout=60) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == written
    assert tree_hashes(root) == tree_hashes(world)


def test_generate_is_idempotent(world, config):
    before = {p: p.stat().st_mtime_ns for p in world.rglob("*.png")}
    assert generate_world(config, world, progress=False) == world
    assert {p: p.stat().st_mtime_ns for p in world.rglob("*.png")} == before


def test_different_seed_gives_different_images(config):
    a = render_identity_frames(config, pid=1, camid=1, n_frames=3)
    b = render_identity_frames(WorldConfig(seed=4, **SMALL), pid=1, camid=1, n_frames=3)
    for fa, fb in zip(a, b):
        assert np.abs(fa.image.astype(int) - fb.image.astype(int)).mean() > 5


def test_rendered_frames_are_crops_with_every_keypoint(config):
    frames = render_identity_frames(config, pid=2, camid=2, n_frames=4)
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(tuple(f.keypoints) == KEYPOINT_NAMES for f in frames)


# ---------------------------------------------------------------------------- misalignment

@pytest.mark.parametrize("pid,camid", [(1, 1), (2, 2), (4, 1), (5, 2)])
def test_zero_misalignment_keeps_the_body_still_in_the_crop(config, pid, camid):
    frames = render_identity_frames(config, pid, camid, misalignment=0.0, occlusion_rate=0.0, n_frames=12)
    for name in ("neck", "head_top", "left_hip", "right_hip"):
        assert motion(frames, name) < 1e-6
    assert motion(frames, "left_ankle") > 0.5  # while the legs walk


def test_box_track_is_still_at_zero_and_bounded_at_one():
    still = box_track(200, 0.0, np.random.default_rng(0))
    assert np.array_equal(still, np.tile([0.0, 0.0, 1.0, 1.0], (200, 1)))
    severe = box_track(2000, 1.0, np.random.default_rng(0))
    assert np.abs(severe[:, :2]).max() <= 0.25 and np.abs(severe[:, :2]).max() > 0.15
    assert 0.8 <= severe[:, 2].min() and severe[:, 2].max() <= 1.2 and np.ptp(severe[:, 2]) > 0.2


def test_keypoint_motion_grows_with_misalignment(config):
    plan = plan_world(config)
    keys = [(t.pid, t.camid) for t in plan.tracklets if t.index == 0]
    means = [np.mean([motion(render_identity_frames(config, pid, cam, misalignment=m, occlusion_rate=0.0,
                                                    n_frames=12)) for pid, cam in keys])
             for m in (0.0, 0.5, 1.0)]
    assert means[0] < 1e-6 < means[1] < means[2]
    assert means[2] > 3.0  # severe: several pixels per frame in a 64-pixel-wide crop


# ---------------------------------------------------------------------------- keypoints

@pytest.fixture(scope="module")
def keypoints(world) -> pd.DataFrame:
    return pd.read_csv(world / "keypoints.csv")


def test_keypoint_table_covers_every_frame(world, keypoints):
    frames = {p.relative_to(world).as_posix() for split in ("train", "query", "gallery")
              for p in (world / split).rglob("*.png")}
    assert set(keypoints.image) == frames
    per_image = keypoints.groupby("image").keypoint.apply(tuple)
    assert all(names == KEYPOINT_NAMES for names in per_image)
    assert set(keypoints.visibility.unique()) <= {0.0, 0.5, 1.0}


@pytest.mark.parametrize("table", ["keypoints.csv", "crops/keypoints.csv"])
def test_visible_keypoints_lie_inside_the_crop(world, table):
    kp = pd.read_csv(world / table)
    seen = kp[kp.visibility > 0]
    assert len(seen) > 0.5 * len(kp)
    assert seen.x.between(0, W, inclusive="left").all() and seen.y.between(0, H, inclusive="left").all()
    outside = ~(kp.x.between(0, W, inclusive="left") & kp.y.between(0, H, inclusive="left"))
    assert (kp.visibility[outside] == 0).all()


def test_occluded_keypoints_are_marked_and_really_covered(config):
    """Same tracklet, same noise, with and without occluders: the hidden points changed pixels."""
    plan = plan_world(config)
    hidden = 0
    for t in [t for t in plan.tracklets if t.index == 0]:
        clean = render_identity_frames(config, t.pid, t.camid, misalignment=0.0, occlusion_rate=0.0, n_frames=6)
        occluded = render_identity_frames(config, t.pid, t.camid, misalignment=0.0, occlusion_rate=1.0, n_frames=6)
        for fc, fo in zip(clean, occluded):
            assert all(v > 0 for _, _, v in fc.keypoints.values())  # nothing leaves a still box
            for x, y, v in fo.keypoints.values():
                if v == 0:
                    hidden += 1
                    px = (int(y), int(x))
                    assert np.abs(fo.image[px].astype(int) - fc.image[px].astype(int)).max() > 0
    assert hidden > 0


# ---------------------------------------------------------------------------- reading back

def test_read_world_round_trip(world):
    data = read_world(world)
    meta = yaml.safe_load((world / "world.yaml").read_text())
    assert data.counts() == {k: meta["counts"][k] for k in ("train", "query", "gallery")}
    train, query, gallery = ({t.pid for t in ts} for ts in (data.train, data.query, data.gallery))
    assert not train & (query | gallery)
    assert query == gallery and len(data.query) == len(query)  # one query tracklet per test identity
    for t in data.train + data.query + data.gallery:
        names = [Path(f).name for f in t.frames]
        assert names == sorted(names) == [f"{i:04d}.png" for i in range(len(t))]
        assert t.name == Path(t.frames[0]).parent.name and f"_c{t.camid}_" in t.name
    for q in data.query:  # a match in another camera exists
        assert any(g.pid == q.pid and g.camid != q.camid for g in data.gallery)
    assert data.protocol == {"gallery": "gallery only", "misalignment": 0.3, "seed": 3, "occlusion_rate": 0.09}
    assert len(pd.read_csv(world / "crops" / "keypoints.csv")) == 4 * len(KEYPOINT_NAMES)


def _remove_yaml(root):
    (root / "world.yaml").unlink()


def _delete_middle_frame(root):
    frames = sorted((root / "train").rglob("*.png"))
    folder = max({f.parent for f in frames}, key=lambda d: len(list(d.iterdir())))
    (folder / "0002.png").unlink()


def _delete_last_frame(root):
    folder = sorted((root / "gallery").glob("*/*"))[0]
    sorted(folder.iterdir())[-1].unlink()


def _rename_tracklet(root):
    folder = sorted((root / "query").glob("*/*"))[0]
    folder.rename(folder.with_name(folder.name + "_old"))


def _rename_identity(root):
    folder = sorted((root / "train").iterdir())[0]
    folder.rename(folder.with_name("id" + folder.name))


def _remove_split(root):
    shutil.rmtree(root / "gallery")


def _remove_keypoints(root):
    (root / "keypoints.csv").unlink()


@pytest.mark.parametrize("damage,what", [
    (_remove_yaml, "world.yaml"), (_delete_middle_frame, "0002.png"), (_delete_last_frame, "gallery images"),
    (_rename_tracklet, "_old"), (_rename_identity, "identity folders"), (_remove_split, "gallery"),
    (_remove_keypoints, "keypoints.csv"),
])
def test_broken_tree_is_refused(broken, damage, what):
    damage(broken)
    with pytest.raises((FileNotFoundError, ValueError), match="generate_world") as err:
        read_world(broken)
    assert what in str(err.value)


def test_missing_root_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate_world"):
        read_world(tmp_path / "nowhere")


def test_generate_refuses_to_overwrite_a_foreign_folder(config, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="world.yaml"):
        generate_world(config, tmp_path, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------- config and plan

@pytest.mark.parametrize("field,value", [
    ("seed", -1), ("num_identities", 1), ("num_identities", 2.5), ("num_cameras", 1), ("num_cameras", True),
    ("tracklets_per_identity_per_camera", 0), ("frames_per_tracklet", (10, 5)), ("frames_per_tracklet", "16"),
    ("image_size", (64, 64)), ("image_size", (8, 4)), ("misalignment", 1.5), ("misalignment", -0.1),
    ("occlusion_rate", 2.0), ("similar_identity_fraction", 0.8), ("train_fraction", 0.0),
    ("train_fraction", 1.0), ("static_crops", -1),
])
def test_invalid_config_is_refused(field, value):
    with pytest.raises(ValueError, match=f"WorldConfig.{field}"):
        WorldConfig(**{field: value})


def test_config_round_trips_through_world_yaml(world, config):
    meta = yaml.safe_load((world / "world.yaml").read_text())
    assert WorldConfig.from_dict(meta["config"]) == config


def test_look_alikes_share_a_split_and_differ_in_one_attribute(config):
    plan = plan_world(config)
    assert plan.look_alikes, "similar_identity_fraction > 0 must make look-alikes"
    for pair in plan.look_alikes:
        twin, base = plan.identities[pair["pid"]], plan.identities[pair["look_alike_of"]]
        assert (pair["pid"] in plan.train_pids) == (pair["look_alike_of"] in plan.train_pids)
        assert pair["differs_in"] in MUTABLE_ATTRIBUTES
        differing = {k for k in vars(twin) if getattr(twin, k) != getattr(base, k)}
        assert len(differing) == 1


def test_sheet_is_written(config, tmp_path):
    from ssn3dlib.data.synthetic import world_sheet

    path = world_sheet(config, tmp_path / "sheet.png")
    with Image.open(path) as im:
        assert im.size == (1800, 1152)


def test_manifest_matches_the_default_world():
    """data_manifests/synthetic_world.yaml records the defaults and the counts they give."""
    from ssn3dlib.data.manifests import load_manifest
    from ssn3dlib.data.synthetic.writing import world_counts

    manifest = load_manifest("synthetic_world")
    assert WorldConfig.from_dict(manifest["parameters"]) == WorldConfig()
    counts = world_counts(plan_world(WorldConfig()))
    assert {k: counts[k] for k in ("train", "query", "gallery")} == manifest["counts"]
    assert counts["crops"] == manifest["counts_crops"]
