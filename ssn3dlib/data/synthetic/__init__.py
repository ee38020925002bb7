"""A procedural video re-ID world: walking pedestrians seen by several cameras through
imperfect, jittered boxes, with exact keypoints. See world.py for the tree it writes."""
from .pedestrian import KEYPOINT_NAMES, Appearance, sample_appearance, walk_pose
from .world import (RenderedFrame, WorldConfig, generate_world, plan_world, read_world,
                    render_identity_frames, render_tracklet)

__all__ = ["KEYPOINT_NAMES", "Appearance", "RenderedFrame", "WorldConfig", "generate_world",
           "plan_world", "read_world", "render_identity_frames", "render_tracklet",
           "sample_appearance", "walk_pose", "world_sheet"]


def __getattr__(name):
    # The sheet pulls in matplotlib: import it only when asked for.
    if name == "world_sheet":
        from .sheet import world_sheet
        return world_sheet
    raise AttributeError(name)
