"""The training loop: one code path for a CPU notebook, one GPU, or DDP under torchrun.

Resume, and why it is exact. Every source of randomness is a function of the run's seed
and its position: the identity sampler's epoch plan and each clip's frames and
augmentation depend on (seed, epoch, index); the torch/numpy/python generators are
re-seeded from (seed, epoch, rank) at every epoch start, and their states are saved in
every checkpoint. Checkpoints are written at every epoch end and, with
train.checkpoint_every_steps = n, every n steps inside an epoch. A resumed run loads
last.pt, replays the same epoch plan skipping the batches already trained on (no image of
them is decoded), restores the generator states, and truncates metrics.jsonl to the lines
the checkpoint had seen, so it ends with the same weights and the same metrics as a run
that was never interrupted (bit for bit on CPU; on CUDA up to cuDNN's nondeterminism).
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler
from tqdm.auto import tqdm

from ..data.registry import dataset_info
from ..errors import Interrupted, UserError
from . import build
from .checkpoint import (
    CheckpointError,
    capture_rng,
    check_signature,
    load_checkpoint,
    model_signature,
    restore_rng,
    save_checkpoint,
    seed_everything,
    unwrap,
)
from .config import RESULT_NEUTRAL_KEYS, ConfigError, RunConfig, config_changes, load_config, save_config
from .distributed import (
    DistributedContext,
    barrier,
    broadcast_object,
    configure_threads,
    gather_objects,
    init_distributed,
    mean_over_ranks,
    shutdown,
    sync_buffers,
)
from .evaluator import device_name, evaluate_model, run_description

#: Config keys that may change between a run and its resumption: those that change no result,
#: and the number of epochs (a finished run can be trained on).
RESUMABLE_CHANGES = RESULT_NEUTRAL_KEYS | {"train.epochs"}
#: Record fields that measure time, not training (left out when comparing runs).
TIMING_KEYS = ("seconds", "clips_per_s", "eval_seconds")


class DivergedError(UserError, FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the settings to lower."""


@dataclass
class RunResult:
    """What train() returns; metrics are percentages."""

    run_dir: Path
    config: RunConfig
    final: Optional[Dict[str, Any]]        # the last evaluation
    best: Optional[Dict[str, Any]]         # the evaluation kept as best.pt (eval.select)
    best_epoch: Optional[int]
    epochs: int                            # epochs trained so far
    wall_seconds: float                    # this call
    train_seconds: float                   # all sessions of this run
    device: str
    world_size: int
    resumed_from: Optional[Dict[str, int]]
    paths: Dict[str, Path] = field(default_factory=dict)
    #: The trained model (unwrapped from DDP, on its device, eval mode): attention maps, features.
    model: Optional[nn.Module] = field(default=None, repr=False)

    def summary(self) -> Dict[str, Any]:
        """A JSON-ready record (the 04 notebook's report row)."""
        return {**run_description(self.config), "final": self.final, "best": self.best,
                "best_epoch": self.best_epoch, "epochs": self.epochs, "wall_seconds": self.wall_seconds,
                "train_seconds": self.train_seconds, "device": self.device, "world_size": self.world_size,
                "run_dir": str(self.run_dir), "paths": {k: str(v) for k, v in self.paths.items()}}


def run_paths(run_dir: Union[str, Path]) -> Dict[str, Path]:
    run_dir = Path(run_dir)
    return {"config": run_dir / "config.yaml", "last": run_dir / "checkpoints" / "last.pt",
            "best": run_dir / "checkpoints" / "best.pt", "metrics": run_dir / "metrics.jsonl",
            "tensorboard": run_dir / "tensorboard"}


def split_run_dir(run_dir: Union[str, Path], split: int) -> Path:
    """Where split `split` of a split-protocol run lives (``train_splits``): run_dir/split<k>."""
    return Path(run_dir) / f"split{split}"


def read_metrics(run_dir: Union[str, Path]):
    """metrics.jsonl as a pandas DataFrame (column `kind`: step, epoch or eval)."""
    import pandas as pd

    path = run_paths(run_dir)["metrics"]
    return pd.read_json(path, lines=True) if path.is_file() and path.stat().st_size else pd.DataFrame()


# ============================================================================ pieces

class EpochWindow(Sampler):
    """Wraps the identity batch sampler: yields batches [start, stop) of the epoch plan.

    stop caps steps per epoch (CPU budgets); start skips the batches a resumed run has
    already trained on, for one epoch only, without loading them.
    """

    def __init__(self, inner, stop: Optional[int] = None):
        self.inner, self.stop, self.start = inner, stop, 0

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.inner.epoch

    def steps(self) -> int:
        """Batches of the whole current epoch (before skipping)."""
        n = len(self.inner)
        return n if self.stop is None else min(n, self.stop)

    def __iter__(self):
        start, self.start = self.start, 0
        return islice(iter(self.inner), start, self.steps())

    def __len__(self) -> int:
        return self.steps() - self.start


class MetricsLog:
    """Append-only JSON lines on the main rank; TensorBoard scalars beside when available."""

    def __init__(self, path: Path, enabled: bool, tensorboard_dir: Optional[Path] = None):
        self.path, self.enabled, self.lines = path, enabled, 0
        self.writer = None
        if enabled and tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tensorboard_dir))

    def start(self, keep_lines: int) -> None:
        """Keep the first keep_lines records (those the checkpoint had seen), drop the rest."""
        self.lines = keep_lines
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = self.path.read_text().splitlines(keepends=True)[:keep_lines] if self.path.is_file() else []
        self.lines = len(kept)
        self.path.write_text("".join(kept))

    def write(self, record: Dict[str, Any], step: int) -> None:
        self.lines += 1
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self.writer.add_scalar(f"{record['kind']}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tensorboard_dir(config: RunConfig, paths) -> Optional[Path]:
    wanted = config.train.tensorboard
    if wanted is False:
        return None
    try:
        import tensorboard  # noqa: F401  (SummaryWriter needs the package)
    except ImportError:
        if wanted:
            raise ConfigError("train.tensorboard=true but the tensorboard package is not installed; "
                              "pip install tensorboard, or set train.tensorboard=null (when installed)") from None
        return None
    return paths["tensorboard"]


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _channels_last_clips(clips: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) laid out so that its (B*T, C, H, W) view is channels_last."""
    return clips.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def _channels_last_weights(model: nn.Module) -> None:
    """channels_last for the 4-D (2D conv) weights; Module.to(memory_format=...) refuses the
    5-D weights of the 3D part blocks."""
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


# ============================================================================ the run

class _Run:
    """State of one training run on one rank (train() is the public entry)."""

    def __init__(self, config: RunConfig, run_dir: Path, ctx: DistributedContext, progress: bool,
                 on_step: Optional[Callable[[Dict[str, Any]], None]], check_images: bool = False):
        self.config, self.ctx, self.on_step = config, ctx, on_step
        self.progress = progress and ctx.is_main
        self.paths = run_paths(run_dir)
        self.device = ctx.device
        t = config.train

        configure_threads(t.num_threads, ctx)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.amp = build.amp_dtype(config, self.device)
        self.dataset = build.prepare_dataset(config.data, progress=self.progress)
        if check_images:
            from ..data.layout import check_images_readable

            frames = self.dataset.all_frames()
            check_images_readable(tqdm(frames, desc="checking images", unit="image", disable=not self.progress))
            if self.progress:
                print(f"decoded all {len(frames)} images of {self.dataset.name}")
        build.check_clip_length(self.dataset, config.data)
        keypoints = build.load_keypoints(config, Path(self.dataset.root))
        self.test_keypoints = keypoints if build.keypoints_at_test_time(config) else None
        self.train_set = build.build_train_dataset(config, self.dataset, keypoints)

        seed_everything(t.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
        model = build.build_model(config)
        self.signature = model_signature(model, config.to_dict()["model"], config.data.clip_len)
        if t.sync_bn and ctx.is_distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        if t.channels_last:
            _channels_last_weights(model)
        self.model = model
        if ctx.is_distributed:
            find_unused = t.find_unused_parameters
            if find_unused is None:  # e.g. the supervised SSN uses no attention classifier
                find_unused = config.model.capabilities().unused_parameters
            self.model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused)
        self.objective = build.build_objective(config)
        self.optimizer = build.build_optimizer(config, model)
        self.scheduler = build.build_scheduler(config, self.optimizer)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)

        from ..data.clip_dataset import build_train_loader

        d = config.data
        self.loader = build_train_loader(self.train_set, d.identities_per_batch, d.instances_per_identity,
                                         seed=t.seed, num_workers=d.num_workers, rank=ctx.rank,
                                         world_size=ctx.world_size)
        # The loader's batch sampler wraps the identity sampler; window it for resume and step caps.
        self.window = EpochWindow(self.loader.batch_sampler.batch_sampler, t.max_steps_per_epoch)
        self.loader.batch_sampler.batch_sampler = self.window
        if self.window.steps() == 0:
            raise ConfigError(f"an epoch has no batch: {len(self.train_set)} training tracklets of "
                              f"{self.train_set.num_classes} identities cannot fill "
                              f"{ctx.world_size} rank(s) x {d.identities_per_batch} identities x "
                              f"{d.instances_per_identity} clips; lower data.identities_per_batch")

        # Position and bookkeeping (what a checkpoint holds besides the states).
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.epoch_sums: Dict[str, float] = {}
        self.best_value: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.best_eval: Optional[Dict[str, Any]] = None
        self.final_eval: Optional[Dict[str, Any]] = None
        self.train_seconds = 0.0
        self.resumed_from: Optional[Dict[str, int]] = None
        self.rng_to_restore: Optional[Dict[str, Any]] = None
        self.log = MetricsLog(self.paths["metrics"], ctx.is_main,
                              _tensorboard_dir(config, self.paths) if ctx.is_main else None)

    # -- checkpoints -----------------------------------------------------------
    def state(self, rng_states) -> Dict[str, Any]:
        return {
            "model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "epoch_sums": dict(self.epoch_sums), "rng": rng_states, "world_size": self.ctx.world_size,
            "config": self.config.to_dict(), "signature": self.signature,
            "best_value": self.best_value, "best_epoch": self.best_epoch, "best_eval": self.best_eval,
            "final_eval": self.final_eval, "metrics_lines": self.log.lines,
            "train_seconds": self.train_seconds + (time.perf_counter() - self.session_start),
        }

    def save(self, names=("last",)) -> None:
        rng_states = gather_objects(self.ctx, capture_rng())   # every rank takes part
        if self.ctx.is_main:
            payload = self.state(rng_states)
            for name in names:
                save_checkpoint(self.paths[name], payload)
        barrier(self.ctx)

    def resume(self) -> None:
        path = self.paths["last"]
        try:
            payload = load_checkpoint(path)   # on the CPU: RNG states must stay CPU tensors
        except CheckpointError as err:
            raise CheckpointError(f"cannot resume: {err}. {self.resume_fallback()}") from None
        check_signature(payload["signature"], self.signature, str(path))
        changed = config_changes(payload["config"], self.config.to_dict(), ignore=RESUMABLE_CHANGES)
        if changed:
            raise ConfigError(f"cannot resume {path}: the config differs in {', '.join(changed)}. Resume with "
                              f"the run's own config ({self.paths['config']}), or start a fresh run "
                              f"(another run directory, or resume=False / --no-resume)")
        if payload["step_in_epoch"] and payload["world_size"] != self.ctx.world_size:
            raise CheckpointError(f"{path} was written mid-epoch by {payload['world_size']} process(es); "
                                  f"resume it with the same number ({self.ctx.world_size} now)")
        unwrap(self.model).load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        # LambdaLR restores its factor's attributes too; keep this config's (train.epochs may grow).
        self.scheduler.lr_lambdas[0] = build.epoch_schedule(self.config)
        self.scaler.load_state_dict(payload["scaler"])
        for key in ("epoch", "step_in_epoch", "global_step", "epoch_sums", "best_value", "best_epoch",
                    "best_eval", "final_eval", "train_seconds"):
            setattr(self, key, payload[key])
        if self.step_in_epoch:
            self.rng_to_restore = payload["rng"][self.ctx.rank]
        self.log.start(payload["metrics_lines"])
        self.resumed_from = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                             "global_step": self.global_step}
        if self.progress:
            print(f"resuming {path}: epoch {self.epoch + 1}, step {self.step_in_epoch} of that epoch")

    def resume_fallback(self) -> str:
        """What to do when last.pt cannot be read: resume from best.pt if it can, or start over."""
        last, best = self.paths["last"], self.paths["best"]
        over = "rerun with --no-resume (train(..., resume=False)) to start this run over"
        try:
            epoch = load_checkpoint(best)["epoch"]
        except CheckpointError:
            return f"To go on, {over}"
        return (f"To go on from the previous checkpoint, {best} (end of epoch {epoch}), copy it over {last} "
                f"and rerun the same command; or {over}")

    # -- training --------------------------------------------------------------
    def run(self) -> None:
        self.session_start = time.perf_counter()
        t = self.config.train
        while self.epoch < t.epochs:
            self.train_epoch()
            sync_buffers(self.ctx, unwrap(self.model))
            self.scheduler.step()
            self.log_epoch()
            self.epoch += 1
            self.step_in_epoch, self.epoch_sums = 0, {}
            due = t.eval_every and self.epoch % t.eval_every == 0
            best = self.evaluate() if (due or self.epoch == t.epochs) else False
            self.save(("last", "best") if best else ("last",))
        self.log.close()

    def train_epoch(self) -> None:
        t = self.config.train
        self.train_set.set_epoch(self.epoch)
        self.loader.batch_sampler.set_epoch(self.epoch)
        self.window.start = self.step_in_epoch
        total = self.window.steps()
        batches = iter(self.loader)     # creating it may draw from torch's generator: seed after
        if self.rng_to_restore is not None:
            restore_rng(self.rng_to_restore)
            self.rng_to_restore = None
        else:
            seed_everything(_epoch_seed(t.seed, self.epoch, self.ctx.rank))
        self.model.train()
        bar = tqdm(total=total, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{t.epochs}",
                   unit="step", disable=not self.progress, leave=False)
        self.epoch_start = time.perf_counter()
        clips_seen = 0
        for batch in batches:
            losses = self.train_step(batch)
            clips_seen += batch.clips.shape[0]
            self.step_in_epoch += 1
            self.global_step += 1
            for k, v in losses.items():
                self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + v
            self.epoch_sums["steps"] = self.epoch_sums.get("steps", 0) + 1
            record = {"kind": "step", "epoch": self.epoch + 1, "step": self.global_step, **losses,
                      "lr": self.optimizer.param_groups[0]["lr"]}
            if self.global_step % t.log_every_steps == 0:
                self.log.write(record, self.global_step)
            if self.on_step is not None:
                self.on_step(record)
            bar.update(1)
            bar.set_postfix(loss=f"{losses['loss']:.3f}")
            n = t.checkpoint_every_steps
            if n and self.step_in_epoch % n == 0 and self.step_in_epoch < total:
                self.save()
        bar.close()
        seconds = time.perf_counter() - self.epoch_start
        self.epoch_sums["seconds"] = self.epoch_sums.get("seconds", 0.0) + seconds
        self.epoch_sums["clips"] = self.epoch_sums.get("clips", 0) + clips_seen

    def train_step(self, batch) -> Dict[str, float]:
        batch = batch.to(self.device)
        clips = batch.clips
        if self.config.train.channels_last:
            clips = _channels_last_clips(clips)
        autocast = (torch.autocast(self.device.type, dtype=self.amp) if self.amp is not None
                    else contextlib.nullcontext())
        with autocast:
            out = self.model(clips, keypoints=batch.keypoints, labelled=batch.labelled)
            losses = self.objective(out, batch.labels)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise DivergedError(f"loss is {loss.item()} at epoch {self.epoch + 1}, step "
                                     f"{self.step_in_epoch + 1}; lower optim.lr or loss.lambda_ssn, or "
                                     f"use train.amp=none")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = self.config.optim.grad_clip_norm
        if clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach()) for k, v in losses.items()}

    def log_epoch(self) -> None:
        sums = dict(self.epoch_sums)
        steps = max(sums.pop("steps", 0), 1)
        seconds, clips = sums.pop("seconds", 0.0), sums.pop("clips", 0)
        means = mean_over_ranks(self.ctx, {k: v / steps for k, v in sums.items()})
        record = {"kind": "epoch", "epoch": self.epoch + 1, "step": self.global_step, **means,
                  "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds,
                  "clips_per_s": clips * self.ctx.world_size / max(seconds, 1e-9)}
        self.log.write(record, self.global_step)

    def evaluate(self) -> bool:
        """Evaluate on the main rank; True when this is the best so far (keep best.pt)."""
        metrics = None
        if self.ctx.is_main:
            metrics = evaluate_model(unwrap(self.model), self.dataset, self.config, self.device,
                                     self.amp, progress=self.progress, keypoints=self.test_keypoints)
        metrics = broadcast_object(self.ctx, metrics)
        key = self.config.eval.select
        self.final_eval = {"epoch": self.epoch, **metrics}     # with per_query (kept in the checkpoints)
        # metrics.jsonl gets the summary numbers only: one line per evaluation stays small
        record = {"kind": "eval", "epoch": self.epoch, "step": self.global_step,
                  **{k: metrics[k] for k in ("rank1", "rank5", "rank10", "rank20", "mAP", "eval_seconds")}}
        self.log.write(record, self.global_step)
        if self.progress:
            print(f"epoch {self.epoch}: rank-1 {metrics['rank1']:.1f}  mAP {metrics['mAP']:.1f} "
                  f"({metrics['ap_definition']} AP)")
        if self.best_value is None or metrics[key] > self.best_value:
            self.best_value, self.best_epoch, self.best_eval = metrics[key], self.epoch, self.final_eval
            return True
        return False


def train(config: Union[RunConfig, str, Path, Dict], run_dir: Union[str, Path], resume: bool = True,
          progress: bool = True, overrides=(), on_step: Optional[Callable[[Dict[str, Any]], None]] = None,
          check_images: bool = False) -> RunResult:
    """Train (or continue training) the configured model; writes run_dir/config.yaml,
    checkpoints/last.pt and best.pt, metrics.jsonl (and tensorboard/ when installed).

    resume=True continues from checkpoints/last.pt when it exists (a finished run just
    returns its result); resume=False starts over, replacing the run's checkpoints and log.
    on_step(record) is called after every optimiser step (live plots, tests).
    check_images=True decodes every frame of the dataset once first, naming the first bad one.
    Ctrl-C raises Interrupted (a KeyboardInterrupt) saying the epoch; calling again resumes.
    Under torchrun every process calls this; rank 0 writes the files.
    """
    start = time.perf_counter()
    config = load_config(config, overrides) if overrides or not isinstance(config, RunConfig) else config
    run_dir = Path(run_dir).expanduser().resolve()
    ctx = init_distributed(config.train.device)
    threads = torch.get_num_threads()
    run = None
    try:
        run = _Run(config, run_dir, ctx, progress, on_step, check_images)
        last = run.paths["last"]
        if resume and broadcast_object(ctx, last.is_file()):
            run.resume()
        else:
            if ctx.is_main:
                for name in ("last", "best"):
                    run.paths[name].unlink(missing_ok=True)
            run.log.start(0)
        if ctx.is_main:
            save_config(config, run.paths["config"])
        run.run()
        barrier(ctx)
        return RunResult(run_dir=run_dir, config=config, final=run.final_eval, best=run.best_eval,
                         best_epoch=run.best_epoch, epochs=run.epoch, wall_seconds=time.perf_counter() - start,
                         train_seconds=run.train_seconds + (time.perf_counter() - run.session_start),
                         device=device_name(ctx.device), world_size=ctx.world_size,
                         resumed_from=run.resumed_from,
                         paths={k: v for k, v in run.paths.items() if k != "tensorboard" or v.exists()},
                         model=unwrap(run.model).eval())
    except KeyboardInterrupt:
        if run is None or not hasattr(run, "session_start"):
            raise Interrupted("interrupted before training started; rerun the same command") from None
        raise Interrupted(f"interrupted at epoch {run.epoch + 1}; rerun the same command to resume") from None
    finally:
        torch.set_num_threads(threads)   # a notebook keeps its own setting
        shutdown(ctx)


def train_splits(config: Union[RunConfig, str, Path, Dict], run_dir: Union[str, Path],
                 splits: Optional[List[int]] = None, resume: bool = True, progress: bool = True,
                 overrides=(), check_images: bool = False) -> Dict[str, Any]:
    """The split protocols (iLIDS-VID, PRID-2011, PKU): one run per split under
    run_dir/split<k>, and the mean of their best evaluations (see mean_over_splits)."""
    from .evaluator import mean_over_splits

    config = load_config(config, overrides)
    if splits is None:
        num_splits = dataset_info(config.data.name).num_splits
        if num_splits is None:
            raise ConfigError(f"{config.data.name!r} has no split protocol: train it without --all-splits "
                              f"(train() rather than train_splits())")
        splits = list(range(num_splits))
    results = []
    for k in splits:
        split_config = load_config(config, [f"data.options.split={k}"])
        result = train(split_config, split_run_dir(run_dir, k), resume=resume, progress=progress,
                       check_images=check_images)
        results.append({**(result.final or {}), "split": k})
    summary = mean_over_splits(results)
    (Path(run_dir) / "splits.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


__all__ = ["RunResult", "train", "train_splits", "read_metrics", "run_paths", "split_run_dir", "TIMING_KEYS",
           "EpochWindow"]
