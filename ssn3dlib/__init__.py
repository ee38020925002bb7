"""ssn3dlib: Self-Separated Network + per-part 3D convolution for video person re-ID.

Modules keep one job each: ``models`` (backbones, SSN, SSN3D, baselines),
``losses`` (batch-hard triplet, SSN loss combination), ``metrics`` (CMC/mAP,
distances). See README.md for the study and SPEC decisions.
"""
from pathlib import Path

__version__ = "0.1.0"

#: Root of the installed package; notebooks and tools build paths from here,
#: never from the working directory.
PACKAGE_ROOT = Path(__file__).resolve().parent
#: Repository root when running from a checkout (editable install).
REPO_ROOT = PACKAGE_ROOT.parent
