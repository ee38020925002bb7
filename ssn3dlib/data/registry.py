"""One record per dataset: everything the library knows about it, in one place.

Each reader module defines its `DatasetInfo` next to its reader function and
`ssn3dlib.data.readers` registers the built-in ones; code that needs a dataset fact (its
splits, keypoint table, default lambda, title, manifest) reads the record instead of
keeping its own table. A new dataset, from a user's own code:

    from ssn3dlib.data.readers import DatasetInfo, register_dataset

    register_dataset(DatasetInfo(name="my_videos", reader=read_my_videos, title="My videos",
                                 num_splits=5, manifest="/path/to/my_videos.yaml"))
    # now data.name: my_videos works in configs, read_dataset and `ssn3d data verify`
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..errors import InputError
from .manifests import MANIFEST_DIR
from .tracklets import VideoReIDDataset

#: check(root, manifest) -> (summary line, mismatch lines), reading the protocol files only.
ProtocolCheck = Callable[[Path, Dict[str, Any]], Tuple[str, List[str]]]


@dataclass(frozen=True)
class DatasetInfo:
    """The facts of one dataset; register it with `register_dataset`."""

    #: Registry key: data.name in configs, `ssn3d data verify NAME`, its folder under the data root.
    name: str
    #: reader(root, **options) -> VideoReIDDataset; checks the tree before reading it.
    reader: Callable[..., VideoReIDDataset]
    #: Short display name in tables, plots and the report.
    title: str
    #: Train/test splits (reader option split = 0..num_splits-1; results are their mean); None: one protocol.
    num_splits: Optional[int] = None
    #: Reader options users may pass (data.options), each with its accepted values, for help texts.
    options: Mapping[str, str] = field(default_factory=dict)
    #: The dataset's own keypoint table (image,keypoint,x,y,visibility), relative to its root; None: none.
    keypoint_table: Optional[str] = None
    #: Part set its keypoints are mapped to when data.part_set is not given.
    part_set: str = "benchmark9"
    #: Default SSN loss weight: the paper's lambda where the paper gives one, else 0.1 (the
    #: paper's choice for iLIDS-VID and MARS, the closest evidence for a dataset it does not use).
    lambda_ssn: float = 0.1
    #: Manifest file, relative to data_manifests/ (or absolute); None: <name>.yaml there.
    manifest: Optional[str] = None
    #: Manifest count sections that replace those of `counts` when the dataset read has
    #: protocol[key] == value, e.g. {("gallery", "gallery-only"): "counts_gallery_only"}.
    protocol_counts: Mapping[Tuple[str, Any], str] = field(default_factory=dict)
    #: `ssn3d data verify --protocol-only`: checks the protocol files alone (no images); None: not offered.
    protocol_check: Optional[ProtocolCheck] = None

    def __post_init__(self):
        if not self.name or not self.title:
            raise ValueError(f"a DatasetInfo needs a name and a title, got {self.name!r}, {self.title!r}")
        if self.num_splits is not None and self.num_splits < 1:
            raise ValueError(f"{self.name}: num_splits must be None or >= 1, got {self.num_splits}")
        if self.lambda_ssn < 0:
            raise ValueError(f"{self.name}: lambda_ssn must be >= 0, got {self.lambda_ssn}")

    @property
    def manifest_path(self) -> Path:
        return MANIFEST_DIR / (self.manifest or f"{self.name}.yaml")


#: The registered datasets by name. Read it through ssn3dlib.data.readers (which registers
#: the built-in ones), or through the functions below (which make sure it did).
DATASETS: Dict[str, DatasetInfo] = {}


def _registered() -> Dict[str, DatasetInfo]:
    from . import readers  # noqa: F401  importing the package registers the built-in datasets

    return DATASETS


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Make `info.name` usable everywhere a dataset name is (configs, read_dataset, verify)."""
    if not isinstance(info, DatasetInfo):
        raise TypeError(f"register_dataset takes a DatasetInfo, got {type(info).__name__}")
    if info.name in DATASETS:
        raise ValueError(f"dataset {info.name!r} is already registered (reader "
                         f"{DATASETS[info.name].reader.__qualname__}); choose another name")
    DATASETS[info.name] = info
    return info


def dataset_info(name: str) -> DatasetInfo:
    """The record of a registered dataset; ValueError naming the known ones otherwise."""
    datasets = _registered()
    try:
        return datasets[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}; choose one of {sorted(datasets)}") from None


def dataset_title(name: str) -> str:
    """The display title, or the name itself for a dataset not registered (e.g. old results)."""
    info = _registered().get(name)
    return info.title if info else name
