"""Dataset readers by name. Each returns a VideoReIDDataset and checks its tree first.

A new dataset is a reader module here that defines its DatasetInfo (ssn3dlib.data.registry)
next to its reader function, a manifest in data_manifests/<name>.yaml and one
register_dataset line below.
"""
from __future__ import annotations

from pathlib import Path

from ..registry import DATASETS, DatasetInfo, dataset_info, dataset_title, register_dataset
from . import dukemtmc, ilidsvid, mars, pku_reid, prid2011, synthetic_world
from .dukemtmc import read_dukemtmc
from .ilidsvid import read_ilidsvid
from .mars import read_mars
from .pku_reid import read_pku_reid
from .prid2011 import read_prid2011
from .synthetic_world import read_world

register_dataset(mars.DATASET)
register_dataset(ilidsvid.DATASET)
register_dataset(prid2011.DATASET)
register_dataset(dukemtmc.DATASET)
register_dataset(pku_reid.DATASET)
register_dataset(synthetic_world.DATASET)


def read_dataset(name: str, root, **options):
    """Read dataset `name` from `root`; options go to its reader (split, gallery, ...)."""
    return dataset_info(name).reader(Path(root), **options)


__all__ = ["DATASETS", "DatasetInfo", "dataset_info", "dataset_title", "register_dataset", "read_dataset",
           "read_mars", "read_ilidsvid", "read_prid2011", "read_dukemtmc", "read_pku_reid", "read_world"]
