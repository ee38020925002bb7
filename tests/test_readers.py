"""Dataset readers on fixture trees in the real layouts, on the shared real data, and on broken trees."""
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ssn3dlib.data.layout import DatasetLayoutError
from ssn3dlib.data.manifests import load_manifest
from ssn3dlib.data.readers import read_dataset, read_mars
from ssn3dlib.data.readers.mars import read_protocol
from ssn3dlib.paths import data_root

from data_fixtures import build_dukemtmc, build_ilidsvid, build_mars, build_pku_reid, build_prid2011, write_image

SHARED = data_root()
needs_shared = pytest.mark.skipif(not (SHARED / "mars_info").is_dir(), reason="../shared/data not present")


def frame_numbers(tracklet, start, stop):
    return [int(Path(f).stem[start:stop]) for f in tracklet.frames]


def assert_numerically_sorted(dataset, start, stop):
    for t in dataset.train + dataset.query + dataset.gallery:
        numbers = frame_numbers(t, start, stop)
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


# -- iLIDS-VID ---------------------------------------------------------------
def test_ilidsvid_follows_the_split_file(tmp_path):
    root = build_ilidsvid(tmp_path)
    ls_set = scipy.io.loadmat(root / "train-test people splits/train_test_splits_ilidsvid.mat")["ls_set"]
    persons = sorted(p.name for p in (root / "i-LIDS-VID/sequences/cam1").iterdir())
    for split in (0, 7):
        data = read_dataset("ilidsvid", root, split=split)
        test_pids = sorted(int(persons[int(i) - 1][6:]) for i in ls_set[split, :3])
        assert sorted(t.pid for t in data.query) == test_pids == sorted(t.pid for t in data.gallery)
        assert {t.camid for t in data.query} == {1} and {t.camid for t in data.gallery} == {2}
        assert not {t.pid for t in data.train} & set(test_pids)
        assert data.counts()["train"] == {"identities": 3, "tracklets": 6,
                                          "images": sum(len(t) for t in data.train)}
        assert_numerically_sorted(data, -5, None)


@pytest.mark.parametrize("breakage,message", [
    ("split_file", "train_test_splits_ilidsvid.mat"),
    ("camera_mismatch", "same person folders"),
    ("empty_sequence", "holds no"),
])
def test_ilidsvid_rejects_broken_trees(tmp_path, breakage, message):
    root = build_ilidsvid(tmp_path)
    seq = root / "i-LIDS-VID/sequences"
    victim = sorted((seq / "cam2").iterdir())[0]
    if breakage == "split_file":
        (root / "train-test people splits/train_test_splits_ilidsvid.mat").unlink()
    elif breakage == "camera_mismatch":
        victim.rename(victim.with_name("person999"))
    else:
        for f in victim.iterdir():
            f.unlink()
    with pytest.raises(DatasetLayoutError, match=message):
        read_dataset("ilidsvid", root)


def test_ilidsvid_rejects_bad_split_index(tmp_path):
    with pytest.raises(ValueError, match="split must be in 0..9"):
        read_dataset("ilidsvid", build_ilidsvid(tmp_path), split=10)


# -- PRID-2011 ---------------------------------------------------------------
PRID_FRAMES = {1: (5, 6), 2: (4, 4), 3: (7, 5), 4: (6, 9), 5: (3, 8), 6: (4, 0), 201: (0, 5)}


def test_prid2011_keeps_persons_seen_long_enough_in_both_cameras(tmp_path):
    root = build_prid2011(tmp_path, PRID_FRAMES)
    data = read_dataset("prid2011", root, min_frames=4)
    # 5 has only 3 cam_a frames, 6 is not in cam_b, 201 is beyond the 200 shared persons.
    assert data.protocol["persons"] == 4
    assert sorted({t.pid for t in data.train + data.query}) == [1, 2, 3, 4]
    assert len(data.query) == len(data.gallery) == 2 and len(data.train) == 4
    assert "seeded" in data.protocol["splits"]
    assert_numerically_sorted(data, 0, 4)


def test_prid2011_uses_torchreid_split_file_when_present(tmp_path):
    root = build_prid2011(tmp_path, PRID_FRAMES)
    splits = [{"train": ["person_0001", "person_0002"], "test": ["person_0003", "person_0004"]}] * 10
    (root / "splits_prid2011.json").write_text(json.dumps(splits))
    data = read_dataset("prid2011", root, min_frames=4, split=3)
    assert [t.pid for t in data.query] == [3, 4] and data.protocol["splits"].startswith("file")
    splits[0] = {"train": ["person_0005"], "test": ["person_0001"]}
    (root / "splits_prid2011.json").write_text(json.dumps(splits))
    with pytest.raises(DatasetLayoutError, match="usable"):
        read_dataset("prid2011", root, min_frames=4, split=0)


# -- MARS ----------------------------------------------------------------------
TRAIN_ROWS = [(5, 1, 1), (4, 1, 2), (6, 2, 1)]
TEST_ROWS = [(3, -1, 1), (4, 0, 2), (5, 3, 1), (4, 3, 2), (3, 4, 1), (6, 4, 3), (3, 5, 2)]
QUERY_ROWS = [3, 5]  # 1-based: pid 3 cam 1, pid 4 cam 1


@pytest.fixture
def mars_root(tmp_path):
    return build_mars(tmp_path / "MARS", TRAIN_ROWS, TEST_ROWS, QUERY_ROWS)


def test_mars_protocols_drop_junk_and_keep_distractors(mars_root):
    official = read_mars(mars_root)
    assert [(t.pid, t.camid) for t in official.query] == [(3, 1), (4, 1)]
    assert sorted(t.pid for t in official.gallery) == [0, 3, 3, 4, 4, 5]   # queries included
    assert official.protocol["gallery"] == "official"
    only = read_mars(mars_root, gallery="gallery-only")
    assert sorted(t.pid for t in only.gallery) == [0, 3, 4, 5]
    assert len(official.train) == 3 and [len(t) for t in official.train] == [5, 4, 6]
    assert official.query[0].name == "0003C1T0001"
    assert_numerically_sorted(official, -3, None)
    with pytest.raises(ValueError, match="gallery protocol"):
        read_mars(mars_root, gallery="all")


@pytest.mark.parametrize("breakage,message", [
    ("query_file", "query_IDX.mat"),
    ("image", "missing under"),
    ("names", "image names say otherwise"),
    ("junk_query", "junk"),
])
def test_mars_rejects_broken_trees(mars_root, breakage, message):
    info = mars_root / "info"
    if breakage == "query_file":
        (info / "query_IDX.mat").unlink()
    elif breakage == "image":
        next((mars_root / "bbox_test" / "0004").iterdir()).unlink()
    elif breakage == "names":
        names = (info / "train_name.txt").read_text().replace("0002C1", "0007C1")
        (info / "train_name.txt").write_text(names)
    else:
        scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": np.array([[1, 3]], dtype=np.uint16)})
    with pytest.raises(DatasetLayoutError, match=message):
        read_mars(mars_root)


@needs_shared
def test_real_mars_protocol_parses_at_full_scale(tmp_path):
    protocol = read_protocol(SHARED / "mars_info")
    assert len(protocol["track_train_info"]) == 8298
    assert len(protocol["track_test_info"]) == 12180
    assert len(protocol["query_IDX"]) == 1980
    # The full reader on the real protocol, with name lists spelled from it (no images here).
    root = build_mars(tmp_path / "MARS", protocol["track_train_info"], protocol["track_test_info"],
                      protocol["query_IDX"], images=False)
    data = read_mars(root, check_files=False)
    expected = load_manifest("mars")["counts"]
    assert data.counts() == expected
    assert len(read_mars(root, gallery="gallery-only", check_files=False).gallery) == 9330


# -- DukeMTMC-VideoReID -----------------------------------------------------
DUKE = {"train": [(1, 1, 1, 3), (1, 2, 2, 4), (2, 1, 3, 3)],
        "query": [(3, 1, 1, 2)],
        "gallery": [(3, 2, 2, 3), (4, 1, 5, 2)]}


@pytest.mark.parametrize("old_naming", [False, True])
def test_dukemtmc_reads_both_naming_formats(tmp_path, old_naming):
    data = read_dataset("dukemtmc-videoreid", build_dukemtmc(tmp_path, DUKE, old_naming))
    assert data.counts() == {"train": {"identities": 2, "tracklets": 3, "images": 10},
                             "query": {"identities": 1, "tracklets": 1, "images": 2},
                             "gallery": {"identities": 2, "tracklets": 2, "images": 5}}
    assert [(t.pid, t.camid) for t in data.gallery] == [(3, 2), (4, 5)]
    for t in data.train:
        numbers = [int(Path(f).name.replace("_", "")[7:11]) for f in t.frames]
        assert numbers == sorted(numbers)


@pytest.mark.parametrize("breakage,message", [
    ("empty", "holds no"), ("naming", "does not follow"), ("identity", "disagree"), ("split", "'query'"),
])
def test_dukemtmc_rejects_broken_trees(tmp_path, breakage, message):
    root = build_dukemtmc(tmp_path, DUKE)
    tracklet = root / "train" / "0001" / "0002"
    if breakage == "empty":
        for f in tracklet.iterdir():
            f.unlink()
    elif breakage == "naming":
        next(tracklet.iterdir()).rename(tracklet / "frame_12.jpg")
    elif breakage == "identity":
        write_image(tracklet / "0009_C2_F0100_X1.jpg")
    else:
        for f in sorted((root / "query").rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        (root / "query").rmdir()
    with pytest.raises(DatasetLayoutError, match=message):
        read_dataset("dukemtmc-videoreid", root)


# -- PKU-Reid subset (real data) ------------------------------------------------
@needs_shared
def test_pku_subset_is_set_to_set_across_cameras():
    data = read_dataset("pku_reid_subset", SHARED / "pku_reid_subset")
    assert data.counts() == load_manifest("pku_reid_subset")["counts"]
    assert {t.camid for t in data.query} == {1} and {t.camid for t in data.gallery} == {2}
    assert [Path(f).name for f in data.query[0].frames] == [f"01_{v}.jpg" for v in range(1, 9)]
    swapped = read_dataset("pku_reid_subset", SHARED / "pku_reid_subset", query_camera=2)
    assert {t.camid for t in swapped.query} == {2}
    other = read_dataset("pku_reid_subset", SHARED / "pku_reid_subset", split=1)
    assert {t.pid for t in other.query} != {t.pid for t in data.query}


def test_pku_reader_rejects_wrong_names(tmp_path):
    build_pku_reid(tmp_path, num_persons=1, views=2)
    write_image(tmp_path / "images" / "001" / "03_1.jpg")
    with pytest.raises(DatasetLayoutError, match="does not follow"):
        read_dataset("pku_reid_subset", tmp_path)


def test_missing_root_names_the_manifest(tmp_path):
    with pytest.raises(DatasetLayoutError, match="data_manifests/mars.yaml"):
        read_dataset("mars", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown dataset"):
        read_dataset("market1501", tmp_path)


# -- ssn3d data verify -----------------------------------------------------------
def run_verify(capsys, *args):
    from ssn3dlib.cli import main
    code = main(["data", "verify", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def duke_manifest(tmp_path):
    """The real DukeMTMC manifest with the counts of the DUKE fixture."""
    import yaml
    manifest = load_manifest("dukemtmc-videoreid")
    manifest["counts"] = {"train": {"identities": 2, "tracklets": 3, "images": 10},
                          "query": {"identities": 1, "tracklets": 1}, "gallery": {"tracklets": 2}}
    path = tmp_path / "fixture.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def test_verify_accepts_a_matching_tree_and_prints_counts(tmp_path, capsys, duke_manifest):
    root = build_dukemtmc(tmp_path / "duke", DUKE)
    code, out = run_verify(capsys, "dukemtmc-videoreid", "--root", root, "--manifest", duke_manifest)
    assert code == 0, out
    assert "decoded 17 images" in out and "ok: dukemtmc-videoreid" in out


def test_verify_reports_count_mismatch_against_the_real_manifest(tmp_path, capsys):
    root = build_dukemtmc(tmp_path / "duke", DUKE)
    code, out = run_verify(capsys, "dukemtmc-videoreid", "--root", root)
    assert code == 2 and "train tracklets: found 3, manifest says 2196" in out


def test_verify_finds_a_corrupt_image(tmp_path, capsys, duke_manifest):
    root = build_dukemtmc(tmp_path / "duke", DUKE)
    victim = next((root / "gallery" / "0004" / "0001").iterdir())
    victim.write_bytes(b"not a jpeg")
    code, out = run_verify(capsys, "dukemtmc-videoreid", "--root", root, "--manifest", duke_manifest)
    assert code == 2 and "unreadable image" in out and victim.name in out
    code, _ = run_verify(capsys, "dukemtmc-videoreid", "--root", root, "--manifest", duke_manifest,
                         "--decode", "none")
    assert code == 0


@needs_shared
def test_verify_on_the_shared_real_data(capsys):
    assert run_verify(capsys, "pku_reid_subset", "--root", SHARED / "pku_reid_subset")[0] == 0
    code, out = run_verify(capsys, "mars", "--root", SHARED / "mars_info", "--protocol-only")
    assert code == 0 and "train 8298, test 12180, query 1980" in out
    code, out = run_verify(capsys, "mars", "--root", SHARED / "mars_info")
    assert code == 2 and "bbox_train" in out
