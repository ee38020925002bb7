"""The training and evaluation engine: YAML configs, a train loop that runs the same on a
CPU notebook, one GPU or DDP under torchrun, exact resume, and evaluation under each
dataset's protocol.

    from ssn3dlib.engine import load_config, train, evaluate
    config = load_config("synthetic_cpu", ["train.epochs=3"])
    result = train(config, "reports/runs/demo")           # RunResult
    metrics = evaluate(result.paths["last"])              # dict: rank1..rank20, mAP, ...
"""
from .checkpoint import CheckpointError, load_checkpoint, load_model_weights
from .config import ConfigError, RunConfig, load_config, save_config
from .evaluator import evaluate, evaluate_model, mean_over_splits
from .trainer import RunResult, read_metrics, run_paths, train, train_splits

__all__ = ["CheckpointError", "ConfigError", "RunConfig", "RunResult", "evaluate", "evaluate_model",
           "load_checkpoint", "load_config", "load_model_weights", "mean_over_splits", "read_metrics",
           "run_paths", "save_config", "train", "train_splits"]
