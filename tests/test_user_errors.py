"""Bad input as a new user gives it, per command: one `error: ...` line naming the key, file or row
and the fix, exit 2 (130 for Ctrl-C), no traceback, and nothing written where it matters
(issue 16). Bugs, by contrast, keep their traceback."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ssn3dlib.cli import main
from ssn3dlib.commands import info as info_command
from ssn3dlib.data.clip_dataset import read_frame
from ssn3dlib.data.keypoints import KeypointTableError, check_keypoint_table, read_keypoint_table
from ssn3dlib.data.layout import DatasetLayoutError
from ssn3dlib.engine import trainer

from data_fixtures import build_ilidsvid, build_pku_reid, write_image

#: The tiny_checkpoint fixture's run, as command-line overrides (its world comes first).
TINY_RUN = ["train.tensorboard=false", "train.epochs=1", "train.max_steps_per_epoch=1", "train.eval_every=0"]


def run(capsys, *args):
    """main(args) -> (exit code, stderr); stdout is dropped."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def train_args(world, run_dir, *extra):
    return ["train", "--config", "synthetic_tiny", "--run-dir", run_dir, "--quiet", f"data.root={world}",
            *TINY_RUN, *extra]


@pytest.fixture
def world_copy(tiny_world, tmp_path):
    """A private copy of the session's tiny world to damage."""
    return shutil.copytree(tiny_world, tmp_path / "world")


# -- the boundary -------------------------------------------------------------------
def test_a_bug_keeps_its_traceback_and_ctrl_c_exits_130(monkeypatch, capsys):
    def bug(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(info_command, "run", bug)
    with pytest.raises(ZeroDivisionError):
        main(["info"])

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info_command, "run", interrupted)
    assert run(capsys, "info") == (130, "interrupted\n")


# -- train: caught before the run writes anything -----------------------------------
def test_one_instance_per_identity_is_refused_before_the_run_folder_is_written(tiny_world, tmp_path, capsys):
    code, err = run(capsys, *train_args(tiny_world, tmp_path / "run", "data.instances_per_identity=1"))
    assert code == 2
    assert error_line(err) == ("error: data.instances_per_identity must be >= 2, got 1: the triplet loss needs 2 "
                               "clips of an identity in a batch (a positive); set it to 2 or more")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,message", [
    (["--config", "no_such_config"], "config 'no_such_config' not found"),
    (["--config", "synthetic_tiny", "optim.lr"], "override 'optim.lr' must look like section.key=value"),
    (["--config", "synthetic_tiny", "optim.lrate=1"], "unknown config key 'optim.lrate'"),
    (["--config", "synthetic_tiny", "data.name=ilidsvid", "data.world=null", "data.root=/nonexistent/ilids"],
     "dataset 'ilidsvid' not found: /nonexistent/ilids does not exist. Set data.root"),
    (["--config", "synthetic_tiny", "data.identities_per_batch=40"], "40 identities"),
    (["--config", "synthetic_tiny", "--all-splits"], "'synthetic_world' has no split protocol: train it without "
                                                    "--all-splits"),
    (["--config", "synthetic_tiny", "train.device=cuda:7"], "train.device='cuda:7' but "),
])
def test_train_names_the_bad_setting(tiny_world, tmp_path, capsys, args, message):
    if args[1] == "synthetic_tiny" and not any(a.startswith("data.root=") for a in args):
        args = [*args, f"data.root={tiny_world}"]
    code, err = run(capsys, "train", "--run-dir", tmp_path / "run", "--quiet", *args)
    assert code == 2 and message in error_line(err), err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_check_images_names_the_first_bad_frame_before_training(world_copy, tmp_path, capsys):
    victim = sorted((world_copy / "gallery").glob("*/*/*.png"))[0]     # a test frame no batch draws
    victim.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, err = run(capsys, *train_args(world_copy, tmp_path / "run", "--check-images"))
    assert code == 2
    assert error_line(err).startswith(f"error: unreadable image {victim}: ")
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_ctrl_c_during_training_says_the_epoch_and_how_to_resume(tiny_world, tmp_path, capsys, monkeypatch):
    def interrupt(self, batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer._Run, "train_step", interrupt)
    code, err = run(capsys, *train_args(tiny_world, tmp_path / "run"))
    assert (code, err) == (130, "interrupted at epoch 1; rerun the same command to resume\n")


def test_a_truncated_last_checkpoint_points_to_the_previous_one(tiny_world, tiny_checkpoint, tmp_path, capsys):
    run_dir = shutil.copytree(tiny_checkpoint.parent.parent, tmp_path / "run")
    last, best = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    last.write_bytes(last.read_bytes()[:1000])
    code, err = run(capsys, *train_args(tiny_world, run_dir))
    line = error_line(err)
    assert code == 2 and line.startswith(f"error: cannot resume: {last} is not a readable SSN3D checkpoint: a torch "
                                         f"zip archive that is truncated or damaged (1000 bytes)")
    assert f"{best} (end of epoch 1), copy it over {last} and rerun the same command" in line
    assert "--no-resume" in line and "weights_only" not in line
    best.unlink()
    code, err = run(capsys, *train_args(tiny_world, run_dir))
    assert code == 2 and error_line(err).endswith("To go on, rerun with --no-resume (train(..., resume=False)) to "
                                                  "start this run over")


# -- evaluate, extract, visrank -------------------------------------------------------
@pytest.mark.parametrize("content,what", [
    (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
     "not a torch file (4096 bytes that torch.save did not write)"),
    (b"epoch,loss\n1,0.5\n", "a text file (17 bytes), not a torch file"),
    (b"", "the file is empty"),
])
def test_evaluate_says_what_a_file_that_is_not_a_checkpoint_is(tmp_path, capsys, content, what):
    bad = tmp_path / "model.pt"
    bad.write_bytes(content)
    code, err = run(capsys, "evaluate", "--checkpoint", bad)
    assert code == 2
    assert error_line(err) == (f"error: {bad} is not a readable SSN3D checkpoint: {what}; give a "
                               f"checkpoints/last.pt or best.pt that `ssn3d train` wrote")


class _Pickled:
    """An object torch.save pickles by reference (weights_only loading refuses it)."""


def test_a_pickle_of_objects_is_not_loaded(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    torch.save({"model": _Pickled()}, bad)
    code, err = run(capsys, "evaluate", "--checkpoint", bad)
    assert code == 2 and "a torch file holding Python objects other than tensors" in err and "weights_only" not in err


@pytest.mark.parametrize("args,message", [
    (["evaluate", "--checkpoint", "{tmp}/none.pt"], "checkpoint {tmp}/none.pt does not exist"),
    (["extract", "--checkpoint", "{ckpt}", "--dataset", "market1501", "--out", "{tmp}/f.npz"],
     "unknown dataset 'market1501'"),
    (["extract", "--checkpoint", "{ckpt}", "--images", "{tmp}/nothing", "--out", "{tmp}/f.npz"],
     "{tmp}/nothing does not exist or is not a folder"),
    (["evaluate", "--checkpoint", "{ckpt}", "--out", "{ckpt}/r.json"],
     "--out {ckpt}/r.json: cannot write under {ckpt} (not a folder); choose another place"),
    (["visrank", "--checkpoint", "{ckpt}", "--out", "{tmp}/r.txt"], "--out {tmp}/r.txt: the file must end in .png or"),
    (["visrank", "--checkpoint", "{ckpt}", "--out", "{tmp}/r.png", "--topk", "0"], "--topk must be >= 1, got 0"),
    (["visrank", "--checkpoint", "{ckpt}", "--out", "{tmp}/r.png", "--queries", "nobody", "--quiet"],
     "no query 'nobody'"),
])
def test_checkpoint_commands_name_the_bad_argument(tiny_checkpoint, tmp_path, capsys, args, message):
    fill = {"tmp": tmp_path, "ckpt": tiny_checkpoint}
    code, err = run(capsys, *[a.format(**fill) for a in args])
    assert code == 2 and message.format(**fill) in error_line(err), err
    assert not list(tmp_path.glob("f.npz")) and not list(tmp_path.glob("r.png"))


# -- data ----------------------------------------------------------------------------------
def _misfile(root, name_cam, name_pid):
    """Add a frame named for camera name_cam / person name_pid into cam2's first person folder."""
    folder = sorted((root / "i-LIDS-VID/sequences/cam2").iterdir())[0]
    frame = folder / f"cam{name_cam}_person{name_pid or folder.name[6:]}_00012.png"
    write_image(frame)
    return folder, frame


@pytest.mark.parametrize("name_cam,name_pid,says", [(1, None, "cam1 person{pid}"), (2, "999", "cam2 person999")])
def test_ilidsvid_refuses_a_frame_named_for_another_camera_or_person(tmp_path, capsys, name_cam, name_pid, says):
    root = build_ilidsvid(tmp_path / "ilids")
    folder, frame = _misfile(root, name_cam, name_pid)
    code, err = run(capsys, "data", "verify", "ilidsvid", "--root", root, "--decode", "none")
    assert code == 2
    assert error_line(err).startswith(f"error: ilidsvid: frame {frame} is named for {says.format(pid=folder.name[6:])}"
                                      f" but lies in cam2/{folder.name}/; move it")


@pytest.mark.parametrize("args,message", [
    (["verify", "ilidsvid", "--root", "{ilids}", "--split", "10"], "ilidsvid: split must be in 0..9, got 10"),
    (["verify", "ilidsvid", "--root", "{ilids}", "--gallery", "official"], "ilidsvid does not take"),
    (["verify", "pku_reid_subset", "--root", "{tmp}/nowhere"], "dataset root {tmp}/nowhere does not exist"),
    (["verify", "ilidsvid", "--root", "{ilids}", "--protocol-only"], "--protocol-only applies to mars only"),
    (["synth", "--root", "{tmp}/w", "--identities", "1"], "--identities must be"),
])
def test_data_commands_name_the_bad_argument(tmp_path, capsys, args, message):
    fill = {"tmp": tmp_path, "ilids": build_ilidsvid(tmp_path / "ilids")}
    code, err = run(capsys, "data", *[a.format(**fill) for a in args])
    assert code == 2 and message.format(**fill) in error_line(err), err


# -- keypoint tables -------------------------------------------------------------------------
POSE = ("nose", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
        "right_ankle")


@pytest.fixture
def pku(tmp_path):
    """A 16 x 8 PKU-Reid tree and a valid table for two of its images."""
    root = build_pku_reid(tmp_path / "pku", num_persons=2, views=2)
    rows = [(f"images/001/01_{v}.jpg", k, 4.0 + 0.1 * i, 8.0, 0.9) for v in (1, 2) for i, k in enumerate(POSE)]
    return root, pd.DataFrame(rows, columns=["image", "keypoint", "x", "y", "visibility"])


def _check(table, root, tmp_path, part_set="benchmark9"):
    path = tmp_path / "kp.csv"
    table.to_csv(path, index=False)
    check_keypoint_table(read_keypoint_table(path), path, part_set, root)
    return path


def test_a_valid_table_passes_and_points_just_outside_the_crop_too(pku, tmp_path):
    root, table = pku
    table.loc[table["keypoint"] == "left_ankle", "y"] = 16 * 1.4     # a foot below the crop, as MediaPipe puts it
    _check(table, root, tmp_path)
    _check(table, root, tmp_path, "pedestrian6")


def _scale_x(t):
    t["x"] *= 1000


def _drop_column(t):
    del t["visibility"]


def _nan(t):
    t.loc[17, "y"] = np.nan


def _words(t):
    t["x"] = t["x"].astype(object)
    t.loc[3, "x"] = "left"


def _unresolved(t):
    t.loc[t.index >= 15, "image"] = "images/009/01_1.jpg"


def _coco_names(t):
    t["keypoint"] = "kp_" + t["keypoint"]


@pytest.mark.parametrize("damage,message", [
    (_scale_x, "line 2 (images/001/01_1.jpg, nose): x=4000 lies outside its 8 x 16 image {root}/images/001/01_1.jpg "
               "(30 such rows); x and y are pixels of the crop itself"),
    (_drop_column, "lacks columns ['visibility']; expected the header image,keypoint,x,y,visibility "
                   "(it has image,keypoint,x,y)"),
    (_nan, "line 19 (images/001/01_2.jpg, right_ear): y is empty (NaN), not a finite number (1 such rows); a keypoint "
           "the pose model did not find gets no row, so drop them"),
    (_words, "line 5 (images/001/01_1.jpg, left_shoulder): x is 'left', not a finite number"),
    (_unresolved, "line 17 (images/009/01_1.jpg, nose): image {root}/images/009/01_1.jpg does not exist (1 of 2 "
                  "images); image paths are relative to the dataset root {root}"),
    (_coco_names, "gives none of the keypoints of the benchmark9 parts ['head', 'body',"),
])
def test_a_bad_keypoint_table_names_the_line_and_an_example(pku, tmp_path, damage, message):
    root, table = pku
    damage(table)
    with pytest.raises(KeypointTableError) as err:
        _check(table, root, tmp_path)
    assert f"keypoint table {tmp_path / 'kp.csv'}" in str(err.value)
    assert message.format(root=root) in str(err.value)


def test_train_refuses_a_keypoint_table_off_the_crops_before_writing(tiny_world, tmp_path, capsys):
    table = pd.read_csv(tiny_world / "keypoints.csv")
    table["x"] *= 1000
    bad = tmp_path / "scaled.csv"
    table.to_csv(bad, index=False)
    code, err = run(capsys, *train_args(tiny_world, tmp_path / "run", f"data.keypoints={bad}"))
    assert code == 2 and f"error: keypoint table {bad}, line " in error_line(err)
    assert "lies outside its 32 x 64 image" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


# -- a bad frame drawn in a DataLoader worker ---------------------------------------------------
class _Frames(Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return read_frame(self.paths[i])


def test_a_bad_frame_in_a_worker_is_one_message_naming_the_file(tmp_path):
    bad = tmp_path / "0003.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DatasetLayoutError) as err:
        next(iter(DataLoader(_Frames([str(bad)]), num_workers=1)))
    message = str(err.value)
    assert message.startswith(f"cannot decode frame {bad}: ") and message.endswith("(in DataLoader worker process 0)")
    assert "Traceback" not in message and "\n" not in message


def test_a_bad_frame_drawn_in_training_is_one_error_line(world_copy, tmp_path, capsys):
    for frame in (world_copy / "train").glob("*/*/*.png"):      # whichever the first batch draws
        frame.write_bytes(b"not a png")
    keypoints = run(capsys, *train_args(world_copy, tmp_path / "run", "data.num_workers=1"))    # found up front
    assert keypoints[0] == 2 and "is not a readable image (re-extract it" in error_line(keypoints[1])
    assert not (tmp_path / "run" / "config.yaml").exists()
    args = train_args(world_copy, tmp_path / "run", "data.num_workers=1", "model.strategy=unsupervised")
    code, err = run(capsys, *args)
    assert code == 2
    line = error_line(err)
    assert line.startswith(f"error: cannot decode frame {world_copy / 'train'}/") and ".png: " in line
    assert line.endswith("(in DataLoader worker process 0)") and len(err.splitlines()) == 1
