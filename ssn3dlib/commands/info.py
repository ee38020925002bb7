"""`ssn3d info`: what this installation can run."""
from __future__ import annotations

import platform


def add_arguments(parser):
    return parser


def run(args) -> int:
    import torch
    import torchvision

    from .. import __version__
    from ..models import KNOWN_BACKBONES, MODELS

    print(f"ssn3dlib {__version__}  python {platform.python_version()}  torch {torch.__version__}  "
          f"torchvision {torchvision.__version__}")
    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    print(f"CPU threads: {torch.get_num_threads()}  CUDA: {', '.join(devices) if cuda else 'none'}")
    print("models:    " + ", ".join(sorted(MODELS)))
    print("backbones:")
    for name, what in KNOWN_BACKBONES.items():
        print(f"  {name:18s} {what}")
    return 0
