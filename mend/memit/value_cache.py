"""Each edit's optimised value z kept on disk, so a large MEMIT batch that stops resumes.

A batch of thousands of edits spends nearly all its time optimising one z per edit (tens of
seconds each on a CPU) before the few seconds of the closed-form solve, and a batch is one
call: without this, a crash at edit 4,000 of 5,000 loses hours. With `MEMITConfig.value_cache`
set, every z is written as soon as it is found, keyed by everything it depends on (the model,
the edited weights as they were before the batch, the edit's prompts, target and subject
positions, the optimisation settings), so re-running the same batch reuses each finished z
and a changed model or setting never picks up a stale one. A file that cannot be read is
recomputed and replaced. Each file also records how long its z took to optimise (wall and CPU
seconds), so a batch finished across several runs can still be timed (benchmarks/rome/bench_edit_speed.py,
`serac-study`).
"""

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from serac.core.edit_values import ValueSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValueCost:
    """How long optimising a z took: wall seconds and the process's CPU seconds (None: a file written
    before that time was kept)."""

    seconds: float | None
    cpu_seconds: float | None


@dataclass(frozen=True)
class CachedValue:
    z: torch.Tensor
    cost: ValueCost


class ValueCache:
    def __init__(self, folder: str | os.PathLike, model_name: str, weights: dict[str, torch.Tensor], block: str, settings: ValueSettings):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(json.dumps([model_name, block, asdict(settings)], sort_keys=True).encode())
        for name in sorted(weights):
            digest.update(name.encode())
            digest.update(weights[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        self._context = digest.hexdigest()

    def path(self, prompts: list[str], positions: list[int], target: str, kl_prompts: list[str], kl_positions: list[int]) -> Path:
        key = json.dumps([self._context, prompts, positions, target, kl_prompts, kl_positions])
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()}.safetensors"

    def get(self, path: Path, dim: int) -> CachedValue | None:
        if not path.exists():
            return None
        try:
            with safe_open(path, framework="pt") as stored:
                value, metadata = stored.get_tensor("z"), stored.metadata() or {}
            cost = ValueCost(**{field.name: float(metadata[field.name]) if field.name in metadata else None for field in fields(ValueCost)})
        except Exception as error:  # half-written or damaged: find z again
            log.warning("value cache: %s is unreadable (%s); optimising this edit's value again", path, error)
            return None
        if value.shape != (dim,) or not torch.isfinite(value).all():
            log.warning("value cache: %s holds a value of shape %s; optimising it again", path, tuple(value.shape))
            return None
        return CachedValue(value, cost)

    def put(self, path: Path, value: torch.Tensor, cost: ValueCost) -> None:
        staging = path.with_suffix(".tmp")
        metadata = {key: repr(seconds) for key, seconds in asdict(cost).items()}
        save_file({"z": value.detach().to("cpu").contiguous()}, staging, metadata=metadata)
        os.replace(staging, path)  # a crash leaves the old file or none, never half of one
