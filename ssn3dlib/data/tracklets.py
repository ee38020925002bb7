"""The one record every dataset reader returns: tracklets split into train / query / gallery."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple


@dataclass(frozen=True)
class Tracklet:
    """One tracklet: its frames in temporal order, identity and camera.

    frames: absolute paths, sorted by frame number (never by a raw glob).
    pid: identity (MARS distractors are 0; junk -1 is dropped by readers).
    camid: camera index as the dataset numbers it.
    name: a stable identifier (e.g. "0001C1T0001"), for keypoint tables and reports.
    """

    frames: Tuple[str, ...]
    pid: int
    camid: int
    name: str = ""

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class VideoReIDDataset:
    """Train / query / gallery tracklets plus the protocol choices that produced them."""

    name: str
    root: Path
    train: List[Tracklet]
    query: List[Tracklet]
    gallery: List[Tracklet]
    protocol: Dict[str, object] = field(default_factory=dict)

    def counts(self) -> Dict[str, Dict[str, int]]:
        """identities, tracklets and images per split (what manifests record)."""
        return {split: split_counts(getattr(self, split)) for split in ("train", "query", "gallery")}

    def all_frames(self) -> List[str]:
        """Every frame of every split, each once (a frame in query and gallery too), in order."""
        return list(dict.fromkeys(f for split in (self.train, self.query, self.gallery) for t in split
                                  for f in t.frames))


def split_counts(tracklets: Sequence[Tracklet]) -> Dict[str, int]:
    return {"identities": len({t.pid for t in tracklets}), "tracklets": len(tracklets),
            "images": sum(len(t) for t in tracklets)}
