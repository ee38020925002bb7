"""`ssn3d data synth` end to end, and `ssn3d data verify` on the worlds it writes."""
import argparse
import os
import shutil

import pytest
import yaml

from ssn3dlib.cli import main
from ssn3dlib.commands import data as data_command
from ssn3dlib.data.manifests import load_manifest
from ssn3dlib.data.synthetic import WorldConfig

TINY = ["--identities", "4", "--frames", "3,5", "--crops", "2", "--image-size", "64,32", "--seed", "5"]


def run(capsys, *args):
    code = main(["data", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def parse(*args):
    parser = argparse.ArgumentParser()
    data_command.add_arguments(parser)
    return parser.parse_args(list(map(str, args)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny world written by the command, and the manifest it wrote for it."""
    base = tmp_path_factory.mktemp("synth")
    assert main(["data", "synth", "--root", str(base / "world"), *TINY,
                 "--write-manifest", str(base / "tiny.yaml")]) == 0
    return base / "world", base / "tiny.yaml"


@pytest.fixture
def copy(tiny, tmp_path):
    """A private copy of the tiny world to damage."""
    return shutil.copytree(tiny[0], tmp_path / "world")


def test_synth_writes_a_world_that_verifies(tiny, capsys):
    root, manifest = tiny
    assert (root / "world.yaml").is_file() and (root / "tracklets.csv").is_file()
    written = yaml.safe_load(manifest.read_text())
    assert WorldConfig.from_dict(written["parameters"]) == world_from(*TINY)
    code, out = run(capsys, "verify", "synthetic_world", "--root", root, "--manifest", manifest)
    assert code == 0, out
    total = sum(c["images"] for c in written["counts"].values())
    assert f"decoded {total} images" in out and "ok: synthetic_world" in out


def test_tiny_world_does_not_match_the_default_manifest(tiny, capsys):
    code, out = run(capsys, "verify", "synthetic_world", "--root", tiny[0])
    assert code == 2 and "train identities: found 2, manifest says 30" in out


def world_from(*options):
    return data_command.world_config(parse("synth", "--root", "x", *options))


def test_synth_defaults_are_the_manifest_world():
    """No options: exactly the world data_manifests/synthetic_world.yaml describes."""
    assert world_from() == WorldConfig.from_dict(load_manifest("synthetic_world")["parameters"])


def test_synth_options_reach_the_config():
    config = world_from("--frames", "10,20", "--tracklets", "2", "--image-size", "96,48", "--cameras", "3",
                        "--misalignment", "0.8", "--occlusion-rate", "0", "--similar-fraction", "0.1",
                        "--train-fraction", "0.25", "--identities", "8", "--crops", "0", "--seed", "9")
    assert config == WorldConfig(seed=9, num_identities=8, num_cameras=3, tracklets_per_identity_per_camera=(2, 2),
                                 frames_per_tracklet=(10, 20), image_size=(96, 48), misalignment=0.8,
                                 occlusion_rate=0.0, similar_identity_fraction=0.1, train_fraction=0.25,
                                 static_crops=0)


@pytest.mark.parametrize("args,message", [
    (["--misalignment", "2"], "--misalignment must be a number in [0.0, 1.0], got 2.0"),
    (["--frames", "9,3"], "--frames must be an integer or a (min, max) pair"),
    (["--identities", "1"], "--identities must be an integer in [2, 9999]"),
])
def test_synth_rejects_invalid_options(tmp_path, capsys, args, message):
    code, out = run(capsys, "synth", "--root", tmp_path / "w", *args)
    assert code == 2 and message in out
    assert not (tmp_path / "w").exists()


def test_synth_rejects_a_malformed_range(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", "--root", str(tmp_path), "--frames", "a,b"])
    assert exc.value.code == 2 and "MIN,MAX" in capsys.readouterr().err


def test_synth_refuses_a_non_empty_root_without_overwrite(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    code, out = run(capsys, "synth", "--root", tmp_path, *TINY)
    assert code == 2 and "not empty" in out and "--overwrite" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    code, out = run(capsys, "synth", "--root", tmp_path, *TINY, "--overwrite")
    assert code == 0 and (tmp_path / "world.yaml").is_file()
    assert (tmp_path / "notes.txt").read_text() == "keep me"  # only world files are replaced


def test_synth_refuses_to_replace_another_world_without_overwrite(copy, capsys):
    code, out = run(capsys, "synth", "--root", copy, *TINY[:-1], "6")
    assert code == 2 and "another config" in out
    code, out = run(capsys, "synth", "--root", copy, *TINY[:-1], "6", "--overwrite")
    assert code == 0 and yaml.safe_load((copy / "world.yaml").read_text())["config"]["seed"] == 6


def test_synth_keeps_the_same_world(copy, capsys):
    stamp = (copy / "world.yaml").stat().st_mtime_ns
    code, out = run(capsys, "synth", "--root", copy, *TINY)
    assert code == 0 and "already holds a world of this config" in out
    assert (copy / "world.yaml").stat().st_mtime_ns == stamp


# -- verify rejects damaged worlds ---------------------------------------------
def _frames(root):
    return sorted((root / "gallery").glob("*/*/*.png"))


def _delete_middle_frame(root):
    _frames(root)[1].unlink()     # frame 0001 of the first gallery tracklet


def _delete_last_frame(root):
    folder = _frames(root)[0].parent
    sorted(folder.iterdir())[-1].unlink()


def _corrupt_image(root):
    _frames(root)[0].write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def _remove_tracklets_csv(root):
    (root / "tracklets.csv").unlink()


@pytest.mark.parametrize("damage,message", [
    (_delete_middle_frame, "frame(s) ['0001.png'] missing"),
    (_delete_last_frame, "gallery images: found"),
    (_corrupt_image, "unreadable image"),
    (_remove_tracklets_csv, "missing 'tracklets.csv'"),
])
def test_verify_rejects_a_damaged_world(tiny, copy, capsys, damage, message):
    damage(copy)
    code, out = run(capsys, "verify", "synthetic_world", "--root", copy, "--manifest", tiny[1])
    assert code == 2 and message in out, out


def test_verify_needs_decoding_to_see_a_corrupt_image(tiny, copy, capsys):
    _corrupt_image(copy)
    code, _ = run(capsys, "verify", "synthetic_world", "--root", copy, "--manifest", tiny[1], "--decode", "none")
    assert code == 0


# -- null counts and totals ------------------------------------------------------
def edited_manifest(path, tmp_path, edit):
    manifest = yaml.safe_load(path.read_text())
    edit(manifest)
    out = tmp_path / "edited.yaml"
    out.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return out


def test_verify_skips_null_counts_and_says_so(tiny, tmp_path, capsys):
    def edit(m):
        m["counts"]["query"]["images"] = None
        m["counts"]["gallery"]["tracklets"] = None
        m["totals"] = {"identities": 4, "images": None}
    code, out = run(capsys, "verify", "synthetic_world", "--root", tiny[0],
                    "--manifest", edited_manifest(tiny[1], tmp_path, edit))
    assert code == 0, out
    assert "not checked (null in the manifest): query images, gallery tracklets, total images" in out


def test_verify_checks_totals_over_all_splits(tiny, tmp_path, capsys):
    counts = yaml.safe_load(tiny[1].read_text())["counts"]
    images = sum(c["images"] for c in counts.values())
    tracklets = sum(c["tracklets"] for c in counts.values())

    def edit(m):
        m["totals"] = {"identities": 4, "tracklets": tracklets, "images": images + 1, "keypoint_rows": 1}
    code, out = run(capsys, "verify", "synthetic_world", "--root", tiny[0],
                    "--manifest", edited_manifest(tiny[1], tmp_path, edit))
    assert code == 2 and f"total images: found {images}, manifest says {images + 1}" in out
    assert "total tracklets" not in out and "keypoint_rows" not in out  # right, or not a count


def test_verify_names_a_required_path_the_manifest_lists(tiny, copy, tmp_path, capsys):
    manifest = edited_manifest(tiny[1], tmp_path, lambda m: m["required"].append("extras/labels.csv"))
    code, out = run(capsys, "verify", "synthetic_world", "--root", copy, "--manifest", manifest)
    assert code == 2 and "missing 'extras/labels.csv'" in out and "data_manifests/synthetic_world.yaml" in out


def test_verify_reports_an_unknown_manifest(tmp_path, capsys):
    code, out = run(capsys, "verify", "market1501", "--root", tmp_path)
    assert code == 2 and "no manifest" in out


# -- the default world ---------------------------------------------------------------
@pytest.mark.skipif(not os.environ.get("SSN3D_SLOW_TESTS"),
                    reason="writes the 5,700-image default world (20-60 s on 2 cores); set SSN3D_SLOW_TESTS=1")
def test_default_world_matches_the_default_manifest(tmp_path, capsys):
    assert main(["data", "synth", "--root", str(tmp_path / "world")]) == 0
    code, out = run(capsys, "verify", "synthetic_world", "--root", tmp_path / "world")
    assert code == 0 and "ok: synthetic_world matches its manifest" in out, out

