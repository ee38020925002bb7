"""Run under torchrun by test_engine_ddp.py: train the tiny config, save this rank's final
weights beside the run so the test can compare ranks."""
import sys

import torch

from ssn3dlib.engine import load_config, train
from ssn3dlib.engine.distributed import launch_environment

world, run_dir = sys.argv[1], sys.argv[2]
config = load_config("synthetic_tiny", [f"data.root={world}", "train.tensorboard=false", *sys.argv[3:]])
result = train(config, run_dir, progress=False)
rank = launch_environment()["rank"]
torch.save({"state": result.model.state_dict(), "final": result.final, "world_size": result.world_size},
           f"{run_dir}/rank{rank}.pt")
