"""Dataset readers by name. Each returns a VideoReIDDataset and checks its tree first.

A new dataset is one module here plus one entry in READERS and a manifest in
data_manifests/<name>.yaml.
"""
from __future__ import annotations

from pathlib import Path

from ..synthetic import read_world
from .dukemtmc import read_dukemtmc
from .ilidsvid import read_ilidsvid
from .mars import read_mars
from .pku_reid import read_pku_reid
from .prid2011 import read_prid2011

READERS = {
    "mars": read_mars,
    "ilidsvid": read_ilidsvid,
    "prid2011": read_prid2011,
    "dukemtmc-videoreid": read_dukemtmc,
    "pku_reid_subset": read_pku_reid,
    "synthetic_world": read_world,
}


def read_dataset(name: str, root, **options):
    """Read dataset `name` from `root`; options go to its reader (split, gallery, ...)."""
    try:
        reader = READERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(READERS)}") from None
    return reader(Path(root), **options)


__all__ = ["READERS", "read_dataset", "read_mars", "read_ilidsvid", "read_prid2011",
           "read_dukemtmc", "read_pku_reid", "read_world"]
