"""Data: dataset readers, manifests, clip sampling, keypoints, the synthetic world."""
from .tracklets import Tracklet, VideoReIDDataset, split_counts

__all__ = ["Tracklet", "VideoReIDDataset", "split_counts"]
