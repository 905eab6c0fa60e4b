"""C = E[k kᵀ]: the uncentred second moment of the keys (inputs) of a linear layer over a text sample.

ROME and MEMIT weigh their weight updates by C⁻¹ so that keys seen often in ordinary text are
disturbed least. C is computed once per (model, layer, sample) with a progress bar,
over every non-padding token of the sample (each batch's sum in float32, the total in float64), and cached on disk under
`serac.core.hub.cache_dir() / "layer_stats"`. A cache file is written atomically (a temp file
in the same folder, then `os.replace`) and carries the token count, the matrix shape and a
SHA-256 of the matrix bytes; a file that fails any check (truncated, corrupt, other shape) is
logged and recomputed, never used.

The text sample (no hub corpus is reachable here) is `dataset_texts`: true statements and
questions from the data folder's training files, in this order until the token budget is
spent: CounterFact train (each prompt with its true object, each neighbourhood prompt with its
answer), zsRE train (question + gold answer), NQ dev (question + first answer). These are short
encyclopaedic sentences, the closest offline stand-in for the Wikipedia sample of the papers;
none of them is a CounterFact/zsRE evaluation record. The budget (`tokens`) is configurable.
"""

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from serac.core import nethook
from serac.core.data import data_dir, load_records
from serac.core.hub import cache_dir
from serac.core.language_model import LanguageModel
from serac.core.setting_checks import SettingsError

log = logging.getLogger(__name__)
SAMPLES = ("dataset_texts",)


@dataclass(frozen=True)
class TextSample:
    """The texts C is estimated over: `name` (one of SAMPLES), at most `tokens` tokens, from `data_dir`."""

    name: str = "dataset_texts"
    tokens: int = 100_000
    data_dir: str | None = None

    def __post_init__(self):
        if self.name not in SAMPLES:
            raise SettingsError(f"unknown statistics sample {self.name!r}; known: {SAMPLES}")
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 1:
            raise SettingsError(f"the statistics sample's tokens must be an int >= 1, got {self.tokens!r}")


def sample_texts(sample: TextSample) -> list[str]:
    """Every text of the sample, in order (the token budget is applied while tokenizing)."""
    texts = []
    for record in load_records("counterfact", "train", sample.data_dir):
        if record.original_answer:
            texts.append(f"{record.prompt} {record.original_answer}.")
        texts.extend(f"{p} {a}." for p, a in zip(record.locality_prompts, record.locality_answers))
    for dataset, split in (("zsre", "train"), ("nq", "dev")):
        path = data_dir(sample.data_dir) / dataset
        if path.is_dir():
            texts.extend(f"{r.prompt} {r.original_answer or r.target}." for r in load_records(dataset, split, sample.data_dir))
    return texts


def second_moments(
    language_model: LanguageModel, module_names: Sequence[str], sample: TextSample, model_key: str, batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """C (float32, [in, in]) of each named linear module, from the disk cache or computed (one pass for all missing)."""
    model = language_model.model
    files = {name: _cache_file(model, name, sample, model_key) for name in module_names}
    found = {name: _read(file) for name, file in files.items()}
    missing = [name for name, moment in found.items() if moment is None]
    if missing:
        computed, count = _compute(language_model, missing, sample, batch_size)
        for name in missing:
            _write(files[name], computed[name], count)
            found[name] = computed[name]
    return {name: found[name].float() for name in module_names}


def _cache_file(model, module_name: str, sample: TextSample, model_key: str) -> Path:
    """One file per (model, layer, sample); the model part includes a fingerprint of the layer's unedited weight."""
    weight = nethook.get_module(model, module_name).weight.detach().float().cpu().contiguous()
    fingerprint = hashlib.sha256(weight.numpy().tobytes()).hexdigest()[:12]
    safe_model = re.sub(r"[^A-Za-z0-9._-]+", "_", model_key).strip("_") or "model"
    folder = cache_dir() / "layer_stats" / safe_model
    return folder / f"{module_name}.{fingerprint}.{sample.name}-{sample.tokens}.safetensors"


def _compute(language_model: LanguageModel, module_names: list[str], sample: TextSample, batch_size: int):
    texts = sample_texts(sample)
    if not texts:
        raise ValueError(f"the statistics sample {sample.name!r} is empty (data folder {data_dir(sample.data_dir)})")
    model, tokenizer = language_model.model, language_model.tokenizer
    dims = {name: nethook.linear_dims(nethook.get_module(model, name))[0] for name in module_names}
    sums = {name: torch.zeros(dim, dim, dtype=torch.float64) for name, dim in dims.items()}
    count = 0
    progress = tqdm(total=sample.tokens, desc=f"layer statistics ({len(module_names)} layers)", unit="tok")
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(
                texts[start : start + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=128
            ).to(language_model.device)
            mask = encoded["attention_mask"].bool()
            budget = sample.tokens - count
            if mask.sum() > budget:  # the last batch: keep only the first `budget` tokens, in reading order
                mask &= mask.flatten().cumsum(0).reshape(mask.shape) <= budget
            inputs = dict(encoded)
            if language_model.is_encoder_decoder:
                inputs["decoder_input_ids"] = torch.full_like(encoded["input_ids"][:, :1], model.config.decoder_start_token_id)
            with nethook.Trace(model, module_names, retain_input=True, stop=True) as trace:
                model(**inputs)
            for name in module_names:
                keys = trace[name].input[mask].float().cpu()
                sums[name] += (keys.T @ keys).double()  # a batch's sum in float32 (fast), the total in float64
            added = int(mask.sum())
            count += added
            progress.update(added)
            if count >= sample.tokens:
                break
    progress.close()
    if count < sample.tokens:
        log.warning("the statistics sample %r holds only %d tokens (%d asked for)", sample.name, count, sample.tokens)
    return {name: total / count for name, total in sums.items()}, count


def _checksum(moment: torch.Tensor) -> str:
    return hashlib.sha256(moment.contiguous().numpy().tobytes()).hexdigest()


def _write(file: Path, moment: torch.Tensor, count: int) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    moment = moment.contiguous().cpu()
    metadata = {"count": str(count), "shape": json.dumps(list(moment.shape)), "sha256": _checksum(moment)}
    handle, staging = tempfile.mkstemp(dir=file.parent, prefix=file.name, suffix=".tmp")
    os.close(handle)
    try:
        save_file({"second_moment": moment}, staging, metadata=metadata)
        os.chmod(staging, 0o644)  # mkstemp makes it private; the cache is shared like the model cache
        os.replace(staging, file)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _read(file: Path) -> torch.Tensor | None:
    """The cached C, or None when there is none or it fails a check (then it is logged and recomputed)."""
    if not file.is_file():
        return None
    try:
        moment = load_file(str(file))["second_moment"]
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
        problems = []
        if json.loads(metadata.get("shape", "null")) != list(moment.shape) or moment.dim() != 2:
            problems.append("shape")
        if moment.shape[0] != moment.shape[-1]:
            problems.append("not square")
        if int(metadata.get("count", "0")) < 1:
            problems.append("token count")
        if metadata.get("sha256") != _checksum(moment):
            problems.append("checksum")
        if not problems:
            return moment
        reason = ", ".join(problems) + " mismatch"
    except (SafetensorError, OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        reason = f"{type(error).__name__}: {error}"
    log.warning("layer statistics cache %s is unusable (%s); recomputing it", file, reason)
    return None
