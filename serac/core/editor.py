"""The one interface every editor (SERAC, MEND, cache, FT, ...) implements.

The evaluation harness, the CLI and users only ever talk to this surface.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from serac.core.language_model import TargetScore

MAX_TEXT_CHARS = 4000


@dataclass(frozen=True)
class QueryResult:
    """An answer, and how it was produced.

    `routed` is True when the answer came from a stored edit (SERAC's counterfactual model,
    the cache) rather than the base model; `edit_id` and `scope_score` say which edit and
    how confident the router was.
    """

    text: str
    routed: bool = False
    edit_id: str | None = None
    scope_score: float | None = None


def check_text(value, what: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The user's text if it is usable, else a clear error naming what was wrong."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}: {value!r}")
    if not value.strip():
        raise ValueError(f"{what} must not be empty or whitespace only")
    if len(value) > max_chars:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {max_chars}")
    return value


def check_texts(texts: Sequence[str], what: str) -> list[str]:
    """A list of usable texts (prompts or targets), else a clear error naming the bad one."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"{what}s must be a list of strings, got {type(texts).__name__}")
    return [check_text(text, f"{what} {index}") for index, text in enumerate(texts)]


def check_pairs(prompts: Sequence[str], targets: Sequence[str]) -> tuple[list[str], list[str]]:
    """Usable prompts and targets of equal number, else a clear error."""
    prompts, targets = check_texts(prompts, "prompt"), check_texts(targets, "target")
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    return prompts, targets


def check_edits(edits: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(edits, (str, bytes)) or not isinstance(edits, Sequence):
        raise TypeError("edits must be a list of (prompt, target) pairs")
    checked = []
    for index, edit in enumerate(edits):
        if not isinstance(edit, (tuple, list)) or len(edit) != 2:
            raise TypeError(f"edit {index} must be a (prompt, target) pair, got {edit!r}")
        checked.append((check_text(edit[0], f"edit {index} prompt"), check_text(edit[1], f"edit {index} target")))
    return checked


class Editor(ABC):
    """Add, query, score, remove and persist edits of a language model."""

    name: ClassVar[str]

    @abstractmethod
    def add_edits(self, edits: Sequence[tuple[str, str]]) -> list[str]:
        """Apply a batch of (prompt, target) edits at once; returns one id per edit (ids are opaque)."""

    def add_edit(self, prompt: str, target: str) -> str:
        return self.add_edits([(prompt, target)])[0]

    @abstractmethod
    def query_batch(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[QueryResult]:
        """Greedy answers of the edited model (`max_new_tokens` None: the editor's configured length)."""

    def query(self, prompt: str, max_new_tokens: int | None = None) -> QueryResult:
        return self.query_batch([check_text(prompt, "prompt")], max_new_tokens)[0]

    @abstractmethod
    def score(self, prompts: Sequence[str], targets: Sequence[str]) -> list[TargetScore]:
        """Teacher-forced scores of `targets` after `prompts` under the edited model (for the metrics)."""

    def target_logprobs(self, prompts: Sequence[str], targets: Sequence[str]) -> list[torch.Tensor]:
        """Next-token log-probs of the edited model at each target position: [target_len, vocab] per pair.

        For KL divergences between the unedited and the edited model (dialogue drawdown).
        """
        raise NotImplementedError(f"the {self.name!r} editor cannot give next-token distributions (target_logprobs)")

    @abstractmethod
    def edit_ids(self) -> list[str]:
        """Ids of the edits currently applied, oldest first."""

    @abstractmethod
    def remove_edit(self, edit_id: str) -> None:
        """Undo one edit; unknown ids raise KeyError."""

    @abstractmethod
    def reset(self) -> None:
        """Undo every edit: the editor answers as the unedited base model again."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write a folder (a JSON config + safetensors weights, no pickles) that `load` reads."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path, device=None) -> "Editor":
        """The editor saved at `path`."""

    # The CLI builds and trains editors from the composed Hydra config (a plain dict with
    # keys `model`, `alg`, `experiment`, `data_dir`, `device`, `seed`).

    @classmethod
    def from_config(cls, config: dict) -> "Editor":
        """A ready editor built from the config (for trained methods: with untrained components)."""
        raise NotImplementedError(f"the {cls.name!r} editor cannot be built from a config; load a saved one")

    @classmethod
    def train_from_config(cls, config: dict, output_dir: Path) -> Path:
        """Train the editor as configured; returns the folder of the saved, trained editor."""
        raise TypeError(f"the {cls.name!r} editor has nothing to train; evaluate it directly")
