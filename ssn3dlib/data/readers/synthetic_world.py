"""The synthetic video re-ID world's record (its generator and reader live in ..synthetic)."""
from __future__ import annotations

from ..registry import DatasetInfo
from ..synthetic import read_world

DATASET = DatasetInfo(name="synthetic_world", reader=read_world, title="synthetic world",
                      keypoint_table="keypoints.csv")
