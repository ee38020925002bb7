"""What a video model needs from the engine and what it gives back.

Every registered model class declares it through a class method taking the constructor's
keyword arguments, so the engine can ask before building (e.g. load keypoints or not):

    SSN3D.capabilities(strategy="supervised").keypoints_at_test   # True
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelCapabilities:
    """Defaults describe a plain embedding model (the baselines)."""

    #: forward takes keypoints= and labelled= frames from the training batches.
    keypoints_in_training: bool = False
    #: forward needs keypoints for every test frame too (evaluation loads them).
    keypoints_at_test: bool = False
    #: has an SSN: model.strategy, model.shared_classifier and loss.lambda_ssn describe its runs.
    ssn: bool = False
    #: returns a trainable VideoOutput.ssn_loss in training (the objective weights it by lambda_ssn).
    ssn_loss: bool = False
    #: returns VideoOutput.maps, one attention map per part and frame.
    attention_maps: bool = False
    #: some parameters get no gradient (DDP then needs find_unused_parameters).
    unused_parameters: bool = False
    #: takes num_parts, one part per keypoint of data.part_set whenever it uses keypoints.
    parts: bool = False
    #: takes train_clip_len, which the engine fills from data.clip_len.
    train_clip_len: bool = False

    @property
    def uses_keypoints(self) -> bool:
        """Whether the run needs a keypoint table at all."""
        return self.keypoints_in_training or self.keypoints_at_test
