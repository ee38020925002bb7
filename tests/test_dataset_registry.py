"""The dataset registry: every built-in record is consistent with its manifest, its reader and
the paper, and a dataset registered from outside the library works everywhere a name does."""
from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ssn3dlib.data.manifests import load_manifest
from ssn3dlib.data.readers import DATASETS, DatasetInfo, dataset_info, read_dataset, register_dataset
from ssn3dlib.data.registry import dataset_title
from ssn3dlib.data.tracklets import Tracklet, VideoReIDDataset
from ssn3dlib.engine import build
from ssn3dlib.engine.config import DataConfig, load_config
from ssn3dlib.reporting import paper

from data_fixtures import build_ilidsvid, build_pku_reid, build_prid2011


# -- the built-in records ------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_has_its_manifest_a_title_and_reader_options(name):
    info = dataset_info(name)
    assert info.manifest_path.is_file() and load_manifest(name)["name"] == name
    assert info.title and dataset_title(name) == info.title
    assert set(info.options) <= set(inspect.signature(info.reader).parameters)


#: A fixture tree per split protocol, with the options that keep it tiny.
SPLIT_TREES = {
    "ilidsvid": (lambda root: build_ilidsvid(root, num_splits=dataset_info("ilidsvid").num_splits), {}),
    "prid2011": (lambda root: build_prid2011(root, {1: (2, 2), 2: (2, 3), 3: (3, 2), 4: (2, 2)}),
                 {"min_frames": 2}),
    "pku_reid_subset": (lambda root: build_pku_reid(root, num_persons=4, views=2), {}),
}


def test_every_split_protocol_has_a_fixture_tree():
    assert set(SPLIT_TREES) == {n for n, i in DATASETS.items() if i.num_splits}


@pytest.mark.parametrize("name", sorted(SPLIT_TREES))
def test_split_counts_are_what_the_readers_accept(name, tmp_path):
    builder, options = SPLIT_TREES[name]
    root, splits = builder(tmp_path), dataset_info(name).num_splits
    last = read_dataset(name, root, split=splits - 1, **options)
    assert last.protocol["num_splits"] == splits
    with pytest.raises(ValueError, match=f"split must be in 0..{splits - 1}"):
        read_dataset(name, root, split=splits, **options)


@pytest.mark.parametrize("name", sorted(n for n, i in DATASETS.items() if not i.num_splits))
def test_single_protocol_readers_take_no_split(name, tmp_path):
    with pytest.raises(TypeError, match="split"):
        read_dataset(name, tmp_path, split=0)


def test_default_lambdas_are_the_papers_choice():
    assert {d: dataset_info(d).lambda_ssn for d in paper.LAMBDA["chosen"]} == paper.LAMBDA["chosen"]


def test_names_are_checked():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(dataset_info("mars"))
    with pytest.raises(ValueError, match=r"unknown dataset 'market1501'; choose one of \[.*'mars'"):
        dataset_info("market1501")


# -- a dataset registered from outside the library -------------------------------------
TOY = "toy_videos"


def read_toy(root: Path, split: int = 0) -> VideoReIDDataset:
    """The PKU fixture layout read with two splits: odd or even identities are the test half."""
    if split not in (0, 1):
        raise ValueError(f"{TOY}: split must be in 0..1, got {split}")
    tracks = [Tracklet(frames=tuple(sorted(str(f) for f in folder.glob(f"{cam:02d}_*.jpg"))), pid=int(folder.name),
                       camid=cam, name=f"{folder.name}_{cam}")
              for folder in sorted((Path(root) / "images").iterdir()) for cam in (1, 2)]
    test = [t for t in tracks if t.pid % 2 == split]
    return VideoReIDDataset(TOY, root, train=[t for t in tracks if t.pid % 2 != split],
                            query=[t for t in test if t.camid == 1], gallery=[t for t in test if t.camid == 2],
                            protocol={"split": split, "num_splits": 2})


@pytest.fixture
def toy(tmp_path):
    manifest = tmp_path / "toy.yaml"
    manifest.write_text(yaml.safe_dump({
        "name": TOY, "title": "Toy videos", "source": "tests", "license": "MIT", "citation": "none",
        "layout": "<root>/images/<pid>/<cam>_<view>.jpg", "required": ["images"],
        "counts": {split: {"identities": 2, "tracklets": n, "images": 2 * n}
                   for split, n in (("train", 4), ("query", 2), ("gallery", 2))}}))
    info = register_dataset(DatasetInfo(name=TOY, reader=read_toy, title="Toy videos", num_splits=2,
                                        options={"split": "0..1"}, keypoint_table="poses.csv",
                                        part_set="pedestrian6", lambda_ssn=0.25, manifest=str(manifest)))
    root = build_pku_reid(tmp_path / "toy", num_persons=4, views=2)
    (root / "poses.csv").write_text("image,keypoint,x,y,visibility\n")
    yield info, root
    del DATASETS[TOY]


def test_a_registered_dataset_is_read_by_name_and_by_the_engine(toy):
    info, root = toy
    assert read_dataset(TOY, root, split=1).counts()["query"] == {"identities": 2, "tracklets": 2, "images": 4}
    data = DataConfig(name=TOY, root=str(root), options={"split": 1})
    assert data.part_set == "pedestrian6"                                    # the record's part set
    assert [t.pid for t in build.prepare_dataset(data).query] == [1, 3]
    assert build.keypoint_table(data, root) == root / "poses.csv"
    config = load_config(None, [f"data.name={TOY}", f"data.root={root}", "model.num_parts=6"])
    assert config.lambda_ssn() == build.build_objective(config).lambda_ssn == 0.25


def test_a_registered_dataset_is_evaluated_as_the_mean_over_its_splits(toy, tmp_path, monkeypatch):
    from ssn3dlib.engine import trainer
    from ssn3dlib.engine.evaluator import PERCENT_KEYS

    trained = []

    def fake_train(config, run_dir, **kwargs):  # what train_splits does with each split's result
        trained.append(config.data.options["split"])
        return SimpleNamespace(final={key: 10.0 * (1 + config.data.options["split"]) for key in PERCENT_KEYS})

    monkeypatch.setattr(trainer, "train", fake_train)
    summary = trainer.train_splits(load_config(None, [f"data.name={TOY}", "model.num_parts=6"]), tmp_path)
    assert trained == [0, 1] and summary["splits"] == [0, 1] and summary["rank1"] == 15.0


def test_a_registered_dataset_is_verified_against_its_own_manifest(toy, capsys):
    from ssn3dlib.cli import main

    assert main(["data", "verify", TOY, "--root", str(toy[1]), "--split", "0", "--decode", "none"]) == 0
    assert f"ok: {TOY} matches its manifest" in capsys.readouterr().out
