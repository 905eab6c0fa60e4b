"""Checks of settings (configs, `configure`, CLI values): the type and the documented range,
so a bad value is refused where it is given, not minutes later deep inside a library."""

import dataclasses
import math
from collections.abc import Collection
from typing import Any

from index.validation import check_text
from serac.core.language_model import PROMPT_FORMATS

# Limits of the settings that size work or memory; beyond them a call would run for
# minutes or exhaust memory (e.g. `top_k=10**8` makes FAISS allocate terabytes).
MAX_NEW_TOKENS = 512  # an answer's length; the models' context is 512 tokens too
MAX_TOP_K = 1000  # candidate edits re-scored per query
MAX_CLASSIFIER_TOKENS = 512  # MiniLM's (and BERT's) position embeddings
MAX_BATCH_SIZE = 4096


class SettingsError(ValueError):
    """A setting the user gave that its config (or a built editor's `configure`) cannot take: a
    user's mistake, which the command-line tools report as a message, not a stack trace."""


def check_int(value: Any, what: str, low: int, high: int | None = None) -> int:
    """`value` if it is an int (not a bool) in [low, high]; SettingsError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise SettingsError(f"{what} must be an int {bounds}, got {value!r}")
    return value


def check_real(value: Any, what: str, low: float, high: float) -> float:
    """`value` as a float if it is a finite real number (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise SettingsError(f"{what} must be a finite number from {low} to {high}, got {value!r}")
    return float(value)


def check_choice(value: Any, what: str, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SettingsError(f"{what} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{what} must be true or false, got {value!r}")
    return value


def check_name(value: Any, what: str) -> str:
    """A non-empty string such as a model name."""
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_base_model(config) -> None:
    """The two settings every method config has: `model_name` (a usable text) and
    `prompt_format` ("auto", "plain" or "chat", see `resolve_prompt_format`)."""
    kind = type(config).__name__
    check_text(config.model_name, f"{kind}.model_name")
    if config.prompt_format not in PROMPT_FORMATS:
        raise SettingsError(f"{kind}.prompt_format must be 'auto', 'plain' or 'chat', got {config.prompt_format!r}")


def settle_prompt_format(config, language_model):
    """`config` with the prompt format its language model resolved ("auto" becomes "plain" or
    "chat"), so a saved editor records how it prompted; an explicit format that differs from the
    model's is an error (the editor would be saved as something it was not)."""
    if config.prompt_format not in ("auto", language_model.prompt_format):
        raise SettingsError(
            f"{type(config).__name__}.prompt_format is {config.prompt_format!r} but the language model "
            f"prompts in {language_model.prompt_format!r}"
        )
    return dataclasses.replace(config, prompt_format=language_model.prompt_format)


def replace_settings(config, changes: dict[str, Any], fixed: Collection[str]):
    """A copy of the dataclass `config` with `changes`, checked by its `__post_init__`; what
    `configure` does. SettingsError for a setting that does not exist or is in `fixed`."""
    settable = {field.name for field in dataclasses.fields(config)} - set(fixed)
    if set(changes) - settable:
        raise SettingsError(f"cannot change {sorted(set(changes) - settable)} on a built editor (unknown, or fixed when it is built); settable: {sorted(settable)}")
    return dataclasses.replace(config, **changes)
