"""A procedural video re-ID world: walking pedestrians seen by several cameras through
imperfect, jittered boxes, with exact keypoints. config.py defines a world, plan.py draws
every choice in it, backgrounds.py, misalignment.py, occluders.py, pedestrian.py and
rendering.py make its frames, writing.py writes the tree data_manifests/synthetic_world.yaml
describes, reading.py reads it back, and sheet.py draws its overview figure."""
from .config import WorldConfig
from .pedestrian import KEYPOINT_NAMES, Appearance, sample_appearance, walk_pose
from .plan import plan_world
from .reading import read_world
from .rendering import RenderedFrame, render_identity_frames, render_tracklet
from .writing import generate_world

__all__ = ["KEYPOINT_NAMES", "Appearance", "RenderedFrame", "WorldConfig", "generate_world",
           "plan_world", "read_world", "render_identity_frames", "render_tracklet",
           "sample_appearance", "walk_pose", "world_sheet"]


def __getattr__(name):
    # The sheet pulls in matplotlib: import it only when asked for.
    if name == "world_sheet":
        from .sheet import world_sheet
        return world_sheet
    raise AttributeError(name)
