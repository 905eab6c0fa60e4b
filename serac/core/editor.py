"""The one interface every editor (SERAC, MEND, cache, FT, ...) implements.

The evaluation harness, the CLI and users only ever talk to this surface.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from serac.core.language_model import LanguageModel, TargetScore
from serac.core.records import EditRequest
from serac.core.setting_checks import SettingsError
from serac.core.text_checks import answer_length, check_pairs, check_text, check_texts


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


@dataclass(frozen=True)
class StoredEdit:
    """An edit the editor holds: its id and what was asked (`subject` None where none was given)."""

    id: str
    prompt: str
    target: str
    subject: str | None = None


class Editor(ABC):
    """Add, query, score, remove and persist edits of a language model."""

    name: ClassVar[str]

    @abstractmethod
    def add_edits(self, edits: Sequence[EditRequest | tuple]) -> list[str]:
        """Apply a batch of edits at once; returns one id per edit (ids are opaque strings).

        An edit is an `EditRequest`, an `EditRecord`, or a (prompt, target) pair or
        (prompt, target, subject) triple; `serac.core.text_checks.check_edits` reads them all.
        """

    def add_edit(self, prompt: str, target: str, subject: str | None = None) -> str:
        return self.add_edits([EditRequest(prompt, target, subject)])[0]

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

    def text_scores(self, texts: Sequence[str]) -> list[TargetScore]:
        """Teacher-forced scores of every token of plain `texts` (no prompt, never a chat template)
        under the model that continues text for users: for held-out perplexity.

        `score` cannot express this: it formats its prompts (a chat model's template) and scores
        only the target. See `LanguageModel.text_batch` for how a text is read.
        """
        raise NotImplementedError(f"the {self.name!r} editor cannot score plain text (text_scores)")

    @abstractmethod
    def edit_ids(self) -> list[str]:
        """Ids of the edits currently applied, oldest first."""

    @abstractmethod
    def stored_edits(self) -> list[StoredEdit]:
        """The edits currently applied, oldest first, with their prompts and targets."""

    def stored_edit(self, edit_id: str) -> StoredEdit:
        """One applied edit; unknown ids raise KeyError."""
        for edit in self.stored_edits():
            if edit.id == edit_id:
                return edit
        raise KeyError(f"no edit with id {edit_id!r}")

    @abstractmethod
    def remove_edit(self, edit_id: str) -> None:
        """Undo one edit; unknown ids raise KeyError."""

    @abstractmethod
    def reset(self) -> None:
        """Undo every edit: the editor answers as the unedited base model again."""

    def close(self) -> None:
        """Release what the editor holds open (a memory editor's memory folder); nothing for
        editors that hold nothing open. Safe to call twice."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write a folder (a JSON config + safetensors weights, no pickles) that `load` reads."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path, device=None) -> "Editor":
        """The editor saved at `path`."""

    # The CLI builds editors from the composed Hydra config (a plain dict with keys `model`,
    # `alg`, `experiment`, `data_dir`, `device`, `seed`); training lives in each method's
    # `train.py`, found through `serac.core.registry.trainer`.

    @classmethod
    def from_config(cls, config: dict) -> "Editor":
        """A ready editor built from the config (for trained methods: with untrained components)."""
        raise NotImplementedError(f"the {cls.name!r} editor cannot be built from a config; load a saved one")


def configure_editor(editor: Editor, settings: dict | None) -> None:
    """Change `settings` on a loaded editor through its `configure` (SERAC, the cache); an
    editor without settings to change, or a setting it refuses, is a SettingsError."""
    if not settings:
        return
    if not callable(getattr(editor, "configure", None)):
        raise SettingsError(f"the {editor.name} editor has no settings to change; drop `configure`")
    try:
        editor.configure(**settings)
    except (ValueError, TypeError) as error:  # TypeError: a value of the wrong type for a dataclass check
        raise SettingsError(f"configure on the {editor.name} editor: {error}") from error


class WeightEditor(Editor, ABC):
    """An editor that changes the weights of `self.language_model` and answers with that model
    (MEND, FT, ROME, MEMIT); its config's `max_new_tokens` is the default answer length."""

    language_model: LanguageModel

    def query_batch(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[QueryResult]:
        prompts = check_texts(prompts, "prompt")
        max_new_tokens = answer_length(max_new_tokens, self.config.max_new_tokens)
        return [QueryResult(text) for text in self.language_model.generate(prompts, max_new_tokens)]

    def score(self, prompts: Sequence[str], targets: Sequence[str]) -> list[TargetScore]:
        return self.language_model.score(*check_pairs(prompts, targets))

    def target_logprobs(self, prompts: Sequence[str], targets: Sequence[str]) -> list[torch.Tensor]:
        return self.language_model.target_logprobs(*check_pairs(prompts, targets))

    def text_scores(self, texts: Sequence[str]) -> list[TargetScore]:
        return self.language_model.text_scores(check_texts(texts, "text"))
