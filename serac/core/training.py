"""The one training loop every trained editor uses (SERAC's scope classifier and
counterfactual model, MEND's editor networks).

A method supplies a `TrainableAlgorithm`: how to batch its data, its loss, its validation
metrics. `train` owns the rest: AdamW, warmup/decay, gradient accumulation and clipping,
validation, early stopping (optionally after going on at a lower learning rate, `lr_reductions`),
checkpoints, resume and logs. The same code runs on CPU, on one
GPU, and on several processes or nodes under `accelerate launch`.

What a run leaves in `output_dir` (shared by all processes):

    checkpoint/              accelerate state (weights, optimizer, schedule, RNG of every
                             process) + trainer_state.json + run_settings.json (what a
                             resume must match); replaced atomically
    best/model.safetensors   the trained weights at the best validation
    metrics.csv              one row per log and per validation
    validation.jsonl         one row per validation, with wall-clock and training time
                             (and validation.png, its curves, when `config.plot_validation`)
    tensorboard/             event files, when `config.tensorboard`

One run per `output_dir` at a time: the main process holds the folder's lock while it trains,
and a second run started in the same folder stops with `saving.FolderInUseError`.
"""

import csv
import json
import logging
import math
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import (
    DistributedDataParallelKwargs,
    gather_object,
    send_to_device,
    set_seed,
)
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from serac.core.run_settings import RUN_SETTINGS_FILE, changed_settings, run_settings
from serac.core.saving import exclusive_folder
from serac.core.train_config import TrainConfig
from serac.core.validation_curves import CURVES_FILE, PLOT_FILE, ValidationCurves

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be resumed from."""


class TrainableAlgorithm(nn.Module, ABC):
    """What the loop needs from a trained method.

    `forward` is called through the prepared (possibly DistributedDataParallel) wrapper;
    `validate` on the bare module, in eval mode, under `torch.no_grad()`. Freeze
    (`requires_grad=False`) whatever is not trained, e.g. a base model, so it stays out of the
    optimizer, the gradient all-reduce and `best/`; override `train()` if a frozen part must
    also stay in eval mode (the loop calls `train()` before training).
    """

    @abstractmethod
    def collate(self, records: list) -> Any:
        """One batch from a list of dataset items: tensors (the loop moves them to the
        device) and plain values (strings, lists) in any dict/list/tuple nesting."""

    @abstractmethod
    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss on `batch`, and floats to log (the same keys on every call)."""

    @abstractmethod
    def validate(self, batch) -> dict[str, float]:
        """Metrics on one validation batch, each a mean over the batch."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [parameter for parameter in self.parameters() if parameter.requires_grad]

    def on_step_end(self, step: int) -> None:
        """Called after every optimizer step, with the number of steps done."""


@dataclass
class TrainerState:
    """What a resumed run needs besides what `accelerator.save_state` keeps."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # batches of `epoch` already trained on, skipped on resume
    best_metric: float | None = None
    best_step: int | None = None
    bad_validations: int = 0  # validations in a row without improvement
    lr_reductions: int = 0  # times the patience ran out and the run went on at a lower lr
    elapsed_seconds: float = 0.0  # training time so far, summed over resumed sessions


@dataclass
class TrainResult:
    steps: int
    best_metric: float | None
    best_step: int | None
    stopped_early: bool
    output_dir: Path
    best_dir: Path | None  # output_dir/best; load with `load_trained_weights`
    checkpoint: Path | None
    metrics_csv: Path


def train(
    algorithm: TrainableAlgorithm, train_items: Sequence, val_items: Sequence, config: TrainConfig, identity: dict | None = None
) -> TrainResult:
    """Train `algorithm` in place; the final weights stay in it, the best ones in `output_dir/best`.

    With `config.resume` (the default), continue from `output_dir/checkpoint` when there is
    one (a run that had already finished does nothing more); without a checkpoint, start from
    scratch. A fresh start replaces the checkpoint, best weights and logs of a previous run in
    `output_dir`. A checkpoint that cannot be read, or that another run wrote (other loop
    settings, other data, or another `identity`: the method's own configuration), raises
    `CheckpointError` naming what differs.
    """
    if len(train_items) == 0 or len(val_items) == 0:
        raise ValueError(f"need training and validation items, got {len(train_items)} and {len(val_items)}")
    accelerator = Accelerator(
        gradient_accumulation_steps=config.grad_accumulation,
        mixed_precision=config.mixed_precision,
        # Steps count optimizer updates whatever the number of processes, so the schedule
        # is stepped by hand once per update (accelerate would step it once per process).
        step_scheduler_with_optimizer=False,
        # Each epoch's order depends on (seed, epoch) only, so a resumed run sees the same batches.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)],
    )
    _check_one_process_group(accelerator)
    output_dir = Path(config.output_dir)
    held = ExitStack()
    if accelerator.is_main_process:  # a second run in the same folder would write over this one's checkpoints
        held.enter_context(exclusive_folder(output_dir, "a training run"))
    with held:
        return _train_in(accelerator, output_dir, algorithm, train_items, val_items, config, identity)


def _train_in(
    accelerator: Accelerator, output_dir: Path, algorithm: TrainableAlgorithm, train_items: Sequence, val_items: Sequence,
    config: TrainConfig, identity: dict | None,
) -> TrainResult:
    set_seed(config.seed)
    # The loader has its own generator so that starting an epoch never draws from the global RNG.
    loader = DataLoader(
        train_items, batch_size=config.batch_size, shuffle=True, collate_fn=algorithm.collate,
        generator=torch.Generator().manual_seed(config.seed),
    )
    loader = accelerator.prepare(loader)  # first: its per-process length sets the schedule's length
    steps_per_epoch = math.ceil(len(loader) / config.grad_accumulation)
    total_steps = min(config.max_steps, config.max_epochs * steps_per_epoch) if config.max_epochs else config.max_steps
    optimizer = torch.optim.AdamW(algorithm.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = LambdaLR(optimizer, lambda step: _lr_factor(step, config.warmup_steps, total_steps, config.lr_decay))
    model, optimizer, scheduler = accelerator.prepare(algorithm, optimizer, scheduler)

    settings = run_settings(config, train_items, val_items, identity)
    state = _load_checkpoint(accelerator, output_dir, settings) if config.resume else None
    if state is None:
        state = TrainerState()
        _clear_previous_run(accelerator, output_dir)
    metrics = _MetricsLog(output_dir, state.step, config.tensorboard) if accelerator.is_main_process else None
    curves = ValidationCurves(output_dir, state.step, config.plot_validation) if accelerator.is_main_process else None
    session_started, elapsed_before = time.monotonic(), state.elapsed_seconds

    parameters = algorithm.trainable_parameters()
    running = _RunningMeans()
    progress = tqdm(total=total_steps, initial=state.step, desc="train", disable=not accelerator.is_main_process)
    model.train()
    # A run that stopped early and is resumed with more lr_reductions goes on at a lower rate.
    _reduce_lr_on_plateau(accelerator, algorithm, optimizer, scheduler, state, config, output_dir)
    while not _finished(state, config, total_steps):
        loader.set_epoch(state.epoch)
        batches = accelerator.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
        for batch in batches:
            with accelerator.accumulate(model):
                loss, logs = model(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    running.add({"grad_norm": accelerator.clip_grad_norm_(parameters, config.max_grad_norm)})
                optimizer.step()  # a no-op until the last micro-batch of the accumulation
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            running.add(logs | {"loss": loss.detach()})
            if not accelerator.sync_gradients:
                continue
            lr = optimizer.param_groups[0]["lr"]  # the rate this update used (the schedule steps below)
            if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: no update, no schedule step
                scheduler.step()
            state.step += 1
            progress.update()
            algorithm.on_step_end(state.step)
            if state.step % config.log_every == 0:
                train_logs = running.pop(accelerator) | {"lr": lr}
                if metrics:
                    metrics.write(state, "train", train_logs)
                progress.set_postfix(loss=f"{train_logs['loss']:.4g}")
            if state.step % config.val_every == 0 or state.step == total_steps:
                val_metrics = _validate(accelerator, algorithm, val_items, config)
                state.elapsed_seconds = elapsed_before + time.monotonic() - session_started
                if metrics:
                    metrics.write(state, "val", val_metrics)
                    # The rate of the updates before this validation: a reduction shows on the curves.
                    curves.write(state.step, state.epoch, state.elapsed_seconds, val_metrics | {"lr": lr})
                _track_best(accelerator, algorithm, val_metrics, state, config, output_dir)
                _reduce_lr_on_plateau(accelerator, algorithm, optimizer, scheduler, state, config, output_dir)
            finished = _finished(state, config, total_steps)
            if config.checkpoint_every and (state.step % config.checkpoint_every == 0 or finished):
                state.elapsed_seconds = elapsed_before + time.monotonic() - session_started
                _save_checkpoint(accelerator, output_dir, state, settings)
            if finished:
                break
        else:
            state.epoch += 1
            state.batches_in_epoch = 0
    progress.close()
    if metrics:
        metrics.close()
    accelerator.wait_for_everyone()

    best = output_dir / BEST_DIR
    return TrainResult(
        steps=state.step,
        best_metric=state.best_metric,
        best_step=state.best_step,
        stopped_early=_patience_exhausted(state, config),
        output_dir=output_dir,
        best_dir=best if (best / WEIGHTS_FILE).exists() else None,
        checkpoint=output_dir / CHECKPOINT_DIR if config.checkpoint_every else None,
        metrics_csv=output_dir / METRICS_FILE,
    )


def _check_one_process_group(accelerator: Accelerator) -> None:
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != launched:
        # e.g. `accelerate launch --cpu --num_processes 2` (accelerate issue #2741): each copy
        # would train alone and overwrite the others' files.
        raise RuntimeError(
            f"{launched} processes were launched but they did not join one group ({accelerator.num_processes} "
            "process). For several CPU processes: ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N"
        )


def _lr_factor(step: int, warmup_steps: int, total_steps: int, decay: str) -> float:
    """The learning rate of update `step` (0-based) as a fraction of `config.lr`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "linear":
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return 1.0


def _patience_exhausted(state: TrainerState, config: TrainConfig) -> bool:
    return config.early_stop_patience is not None and state.bad_validations >= config.early_stop_patience


def _finished(state: TrainerState, config: TrainConfig, total_steps: int) -> bool:
    return state.step >= total_steps or _patience_exhausted(state, config)


def _validate(
    accelerator: Accelerator, algorithm: TrainableAlgorithm, val_items: Sequence, config: TrainConfig
) -> dict[str, float]:
    """Batch-size-weighted means of `algorithm.validate` over the validation set (or its
    first `val_batches` batches), combined across processes."""
    items = list(val_items)
    batches = [items[start : start + config.batch_size] for start in range(0, len(items), config.batch_size)]
    # Every n-th batch per process: the batches, hence the metrics, are the same for any number
    # of processes, and unlike a prepared loader no item is padded in twice.
    shard = batches[: config.val_batches][accelerator.process_index :: accelerator.num_processes]
    sums, count = {}, 0  # metric * batch size, summed over this process's batches
    algorithm.eval()
    # Forked RNG: validating never changes the random stream training sees.
    rng_devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=rng_devices):
        for records in shard:
            batch = send_to_device(algorithm.collate(records), accelerator.device)
            for name, value in algorithm.validate(batch).items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(records)
            count += len(records)
    algorithm.train()
    processes = gather_object([(sums, count)])
    totals = {}
    for process_sums, _ in processes:
        for name, value in process_sums.items():
            totals[name] = totals.get(name, 0.0) + value
    total_count = sum(process_count for _, process_count in processes)
    return {name: value / total_count for name, value in totals.items()}


def _track_best(
    accelerator: Accelerator, algorithm: TrainableAlgorithm, val_metrics: dict[str, float],
    state: TrainerState, config: TrainConfig, output_dir: Path,
) -> None:
    """Count validations without improvement; save the weights when they improve."""
    name = config.early_stop_metric
    if name not in val_metrics:
        raise KeyError(f"early_stop_metric {name!r} is not among the validation metrics {sorted(val_metrics)}")
    value = val_metrics[name]
    best = state.best_metric
    if best is None or (value > best if config.early_stop_mode == "max" else value < best):
        state.best_metric, state.best_step, state.bad_validations = value, state.step, 0
        if accelerator.is_main_process:
            _save_weights(algorithm, output_dir / BEST_DIR, {"step": str(state.step), name: str(value)})
    else:
        state.bad_validations += 1


def _reduce_lr_on_plateau(
    accelerator: Accelerator, algorithm: TrainableAlgorithm, optimizer, scheduler,
    state: TrainerState, config: TrainConfig, output_dir: Path,
) -> None:
    """When the patience has run out and `config.lr_reductions` allows another reduction: multiply
    the learning rate by `lr_reduction_factor` and start counting again, from the current weights
    (PyTorch's and Keras' reduce-on-plateau) or, with `lr_reduction_restores_best`, the best ones.

    The optimizer's moments are kept. The reduced rate lives in the optimizer and scheduler (base
    rates), so a checkpoint keeps it.
    """
    if not _patience_exhausted(state, config) or state.lr_reductions >= config.lr_reductions:
        return
    origin = f"at step {state.step}"
    if config.lr_reduction_restores_best:
        accelerator.wait_for_everyone()  # the main process has written best/
        origin = f"back to the best weights (step {load_trained_weights(algorithm, output_dir / BEST_DIR).get('step')})"
    schedule = scheduler.scheduler if hasattr(scheduler, "scheduler") else scheduler  # accelerate's wrapper
    schedule.base_lrs = [rate * config.lr_reduction_factor for rate in schedule.base_lrs]
    for group in optimizer.param_groups:
        group["lr"] *= config.lr_reduction_factor
    state.lr_reductions += 1
    state.bad_validations = 0
    log.warning(
        "%s has not improved for %d validations: %s, learning rate x %g (reduction %d of %d)",
        config.early_stop_metric, config.early_stop_patience, origin,
        config.lr_reduction_factor, state.lr_reductions, config.lr_reductions,
    )


def trained_state_dict(algorithm: TrainableAlgorithm) -> dict[str, torch.Tensor]:
    """The weights training changes: trainable parameters and buffers (e.g. running statistics)."""
    trainable = {id(parameter) for parameter in algorithm.trainable_parameters()}
    names = {name for name, parameter in algorithm.named_parameters() if id(parameter) in trainable}
    names |= {name for name, _ in algorithm.named_buffers()}
    return {name: tensor.detach().cpu().contiguous() for name, tensor in algorithm.state_dict().items() if name in names}


def _save_weights(algorithm: TrainableAlgorithm, folder: Path, metadata: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / (WEIGHTS_FILE + ".tmp")
    save_file(trained_state_dict(algorithm), staging, metadata=metadata)
    os.replace(staging, folder / WEIGHTS_FILE)  # atomic: never a half-written best


def load_trained_weights(algorithm: nn.Module, folder: str | Path) -> dict[str, str]:
    """Load weights saved by `train` (`output_dir/best`) into `algorithm`; returns their
    metadata (the step and the metric value)."""
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no trained weights ({WEIGHTS_FILE} is missing)")
    _, unexpected = algorithm.load_state_dict(load_file(path), strict=False)
    if unexpected:
        raise ValueError(f"{path} holds weights this algorithm does not have: {unexpected[:5]}")
    with safe_open(path, framework="pt") as file:
        return file.metadata() or {}


def _save_checkpoint(accelerator: Accelerator, output_dir: Path, state: TrainerState, settings: dict) -> None:
    """Write the checkpoint beside the old one, then swap them, so a crash at any moment
    leaves a complete checkpoint (`checkpoint/`, or `checkpoint.old/` mid-swap)."""
    folder = output_dir / CHECKPOINT_DIR
    staging, previous = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        if folder.exists():
            shutil.rmtree(previous, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(staging)
    accelerator.wait_for_everyone()  # every process has written its RNG state
    if accelerator.is_main_process:
        (staging / RUN_SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True))
        (staging / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))  # last: marks it complete
        if folder.exists():
            os.replace(folder, previous)
        os.replace(staging, folder)
        shutil.rmtree(previous, ignore_errors=True)
    accelerator.wait_for_everyone()


def _load_checkpoint(accelerator: Accelerator, output_dir: Path, settings: dict) -> TrainerState | None:
    """Restore the newest checkpoint into the prepared objects; None when there is none."""
    candidates = (output_dir / CHECKPOINT_DIR, output_dir / (CHECKPOINT_DIR + ".old"))  # .old: a crash mid-swap
    folder = next((candidate for candidate in candidates if candidate.is_dir()), None)
    if folder is None:
        log.warning("resume: no checkpoint in %s, starting from scratch", output_dir)
        return None
    _check_same_run(folder, settings)
    try:
        state = TrainerState(**json.loads((folder / STATE_FILE).read_text()))
        accelerator.load_state(folder)
    except Exception as error:
        raise CheckpointError(
            f"cannot resume from {folder}: {type(error).__name__}: {error}. "
            "Delete the folder to start over, or train with resume=False."
        ) from error
    log.info("resumed from %s at step %d", folder, state.step)
    return state


def _check_same_run(folder: Path, settings: dict) -> None:
    saved_file = folder / RUN_SETTINGS_FILE
    if not saved_file.exists():  # written before runs recorded their settings: nothing to compare
        log.warning("resume: %s does not record its run's settings; resuming without checking them", folder)
        return
    try:
        saved = json.loads(saved_file.read_text())
    except ValueError as error:
        raise CheckpointError(f"cannot resume from {folder}: {RUN_SETTINGS_FILE} is unreadable ({error})") from error
    changes = changed_settings(saved, settings)
    if changes:
        raise CheckpointError(
            f"{folder} was written by a run with other settings ({'; '.join(changes[:8])}). "
            "Train with the same settings to resume it, into another output_dir, or with resume=false to start over."
        )


def _clear_previous_run(accelerator: Accelerator, output_dir: Path) -> None:
    """A fresh start must not leave an older run's checkpoint, best weights or logs behind."""
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old", CHECKPOINT_DIR + ".tmp", BEST_DIR, TENSORBOARD_DIR):
            shutil.rmtree(output_dir / name, ignore_errors=True)
        for name in (METRICS_FILE, CURVES_FILE, PLOT_FILE):
            (output_dir / name).unlink(missing_ok=True)
    accelerator.wait_for_everyone()


class _RunningMeans:
    """Means of the values logged since the last log row, averaged over processes."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, values: dict) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def pop(self, accelerator: Accelerator) -> dict[str, float]:
        names = sorted(self.sums)  # every process logs the same names, so the order agrees
        local = torch.tensor([float(self.sums[name]) / self.counts[name] for name in names], device=accelerator.device)
        self.sums, self.counts = {}, {}
        return dict(zip(names, accelerator.reduce(local, reduction="mean").tolist()))


class _MetricsLog:
    """`metrics.csv` and TensorBoard, written by the main process.

    On resume, rows after the checkpoint's step (logged by the run that stopped) are dropped,
    since the resumed run logs those steps again.
    """

    def __init__(self, output_dir: Path, resumed_step: int, tensorboard: bool):
        self.path = output_dir / METRICS_FILE
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as file:
                rows = [row for row in csv.DictReader(file) if int(row["step"]) <= resumed_step]
        self.columns = list(dict.fromkeys(["step", "epoch"] + [name for row in rows for name in row]))
        self._rewrite(rows)
        self.tensorboard = None
        if tensorboard:
            # purge_step hides events a stopped run logged after its checkpoint.
            purge_step = resumed_step + 1 if resumed_step else None
            self.tensorboard = SummaryWriter(output_dir / TENSORBOARD_DIR, purge_step=purge_step)

    def write(self, state: TrainerState, split: str, values: dict[str, float]) -> None:
        row = {"step": state.step, "epoch": state.epoch} | {f"{split}/{name}": value for name, value in values.items()}
        if set(row) <= set(self.columns):
            with open(self.path, "a", newline="") as file:
                csv.DictWriter(file, self.columns).writerow(row)
        else:  # a new column: rewrite the file under the wider header
            with open(self.path, newline="") as file:
                rows = list(csv.DictReader(file))
            self.columns += [name for name in row if name not in self.columns]
            self._rewrite(rows + [row])
        if self.tensorboard:
            for name, value in values.items():
                self.tensorboard.add_scalar(f"{split}/{name}", value, state.step)

    def _rewrite(self, rows: list[dict]) -> None:
        staging = self.path.with_suffix(".csv.tmp")
        with open(staging, "w", newline="") as file:
            writer = csv.DictWriter(file, self.columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(staging, self.path)

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
