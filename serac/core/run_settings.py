"""What makes two training runs the same run, so a checkpoint is resumed only by the run that wrote it.

`train` resumes from `output_dir/checkpoint` by default. Resuming under other settings
(another learning rate, other data, another method configuration) would silently mix two
runs, so the checkpoint keeps the settings it was written with and a resume compares them.
Settings that only change what is logged, where, or for how long may differ.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from serac.core.train_config import TrainConfig

RUN_SETTINGS_FILE = "run_settings.json"

# Free to change between the sessions of one run: what is logged and where, and how long the
# run goes on (a finished run can be trained further; with lr_decay="linear" the rest of the
# schedule stretches to the new length; a run stopped early can go on with lr_reductions).
_NOT_COMPARED = (
    "output_dir", "resume", "tensorboard", "plot_validation", "log_every", "find_unused_parameters",
    "max_steps", "max_epochs", "early_stop_patience", "lr_reductions", "lr_reduction_factor",
    "lr_reduction_restores_best",
)


def run_settings(config: TrainConfig, train_items: Sequence, val_items: Sequence, identity: dict | None) -> dict:
    """The loop's settings, a digest of each data split, and the caller's own description of
    the run (`identity`: the method's configuration), as plain JSON values."""
    settings: dict[str, Any] = {name: value for name, value in asdict(config).items() if name not in _NOT_COMPARED}
    settings["train_items"] = _digest(train_items)
    settings["val_items"] = _digest(val_items)
    if identity:
        settings["run"] = identity
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def changed_settings(saved: dict, current: dict) -> list[str]:
    """Dotted names of the settings that differ, e.g. ["lr: 0.0001 -> 0.0003", "run.alg.rank"].
    A setting the saved run recorded that the current code no longer compares (a method found it
    does not shape training) is not a difference; one the saved run lacks is."""
    saved_flat, current_flat = _flatten(saved), _flatten(current)
    changes = []
    for name in sorted(current_flat.keys()):
        before, after = saved_flat.get(name, "<unset>"), current_flat[name]
        if before != after:
            changes.append(f"{name} (the data differ)" if name.endswith("_items") else f"{name}: {before!r} -> {after!r}")
    return changes


def _digest(items: Sequence) -> str:
    """Count and SHA-256 of the items' reprs: the same records in the same order, or not."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(repr(item).encode())
        digest.update(b"\0")
    return f"{len(items)}:{digest.hexdigest()[:16]}"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat
