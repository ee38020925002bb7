"""PRID-2011 (Hirzer et al., SCIA 2011), multi-shot part, in its official layout.

    <root>/prid_2011/multi_shot/cam_a/person_0001/0001.png
    <root>/prid_2011/multi_shot/cam_b/person_0001/...
    <root>/splits_prid2011.json     (optional: torchreid's 10 splits, [{"train": [...], "test": [...]}])

Protocol: persons 1-200 appear in both cameras; the usual 178 are those with at least
`min_frames` (22, i.e. "more than 21") frames in both cameras. With torchreid's
`splits_prid2011.json` beside the data its 10 splits are used; otherwise 10 random
halves are drawn with a fixed seed (recorded in the protocol). Query = cam_a, gallery = cam_b.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ...errors import InputError
from ..layout import DatasetLayoutError, manifest_hint, require_paths, sorted_frames, sorted_subdirs
from ..registry import DatasetInfo
from ..splits import seeded_halves
from ..tracklets import Tracklet, VideoReIDDataset

NAME = "prid2011"
MULTI_SHOT = "prid_2011/multi_shot"
SPLIT_FILE = "splits_prid2011.json"
PERSON = re.compile(r"person_(?P<pid>\d{4})")
FRAME = re.compile(r"(?P<frame>\d{4})\.png")
SHARED_PERSONS = 200
NUM_SPLITS = 10
SPLIT_SEED = 0


def _tracklet(root: Path, cam: str, person: str) -> Tracklet:
    frames = sorted_frames(NAME, root / MULTI_SHOT / cam / person, FRAME, (".png",))
    return Tracklet(frames=tuple(frames), pid=int(PERSON.fullmatch(person)["pid"]),
                    camid={"cam_a": 1, "cam_b": 2}[cam], name=f"{cam}_{person}")


def read_prid2011(root: Path, split: int = 0, min_frames: int = 22) -> VideoReIDDataset:
    root = Path(root).expanduser().resolve()
    require_paths(NAME, root, [f"{MULTI_SHOT}/cam_a", f"{MULTI_SHOT}/cam_b"])
    if not 0 <= split < NUM_SPLITS:
        raise InputError(f"{NAME}: split must be in 0..{NUM_SPLITS - 1}, got {split}")
    cam_a = {p.name for p in sorted_subdirs(root / MULTI_SHOT / "cam_a", PERSON)}
    cam_b = {p.name for p in sorted_subdirs(root / MULTI_SHOT / "cam_b", PERSON)}
    shared = sorted(p for p in cam_a & cam_b if int(PERSON.fullmatch(p)["pid"]) <= SHARED_PERSONS)
    if not shared:
        raise DatasetLayoutError(f"{NAME}: no person folder appears in both cam_a and cam_b under "
                                 f"{root / MULTI_SHOT}; {manifest_hint(NAME)}")
    tracks = {p: (_tracklet(root, "cam_a", p), _tracklet(root, "cam_b", p)) for p in shared}
    persons = [p for p in shared if min(len(tracks[p][0]), len(tracks[p][1])) >= min_frames]
    split_path = root / SPLIT_FILE
    if split_path.exists():
        splits = json.loads(split_path.read_text())
        if not isinstance(splits, list) or len(splits) <= split or "test" not in splits[split]:
            raise DatasetLayoutError(f"{NAME}: {split_path} must be a list of {{'train', 'test'}} "
                                     f"person-name lists with at least {split + 1} entries")
        test = sorted(splits[split]["test"])
        train = sorted(splits[split]["train"])
        unknown = sorted(set(test + train) - set(persons))
        if unknown:
            raise DatasetLayoutError(f"{NAME}: {split_path} names persons not among the {len(persons)} "
                                     f"usable ones, e.g. {unknown[:3]}")
        source = f"file {SPLIT_FILE}"
    else:
        train, test = seeded_halves(persons, split, NUM_SPLITS, SPLIT_SEED)
        source = f"seeded random halves (numpy default_rng({SPLIT_SEED}))"
    return VideoReIDDataset(
        NAME, root,
        train=[t for p in train for t in tracks[p]],
        query=[tracks[p][0] for p in test],
        gallery=[tracks[p][1] for p in test],
        protocol={"split": split, "num_splits": NUM_SPLITS, "splits": source,
                  "min_frames": min_frames, "persons": len(persons)})


DATASET = DatasetInfo(name=NAME, reader=read_prid2011, title="PRID-2011", num_splits=NUM_SPLITS,
                      options={"split": f"0..{NUM_SPLITS - 1}", "min_frames": "frames in both cameras (22)"})
