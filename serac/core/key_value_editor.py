"""What ROME and MEMIT editors share: a weight editor whose state is one delta per edited MLP matrix.

A subclass says which matrices it edits (`edited_module_names`) and how a batch of edits
changes them (`compute_updates`, with the keys, values and statistics of the core steps);
this base keeps everything else:

- the model always holds exactly `unedited + delta` for each edited matrix; `reset` writes the
  unedited copies back (bit for bit) and only those matrices are copied;
- `remove_edit` is exact by reset + replay: the other edits are re-applied in their original
  batches and order (deterministic on one machine; costs one edit computation per batch);
- `save` writes `editor.json`, `edits.json` (with subjects) and the deltas as safetensors;
  `load` rebuilds the model and adds the saved deltas, no pickles;
- the prefixes (`context_prefixes`) and the statistics C (`layer_statistics`) are computed on
  first use, always from the unedited weights, and reused.
"""

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch

from serac.core import nethook
from serac.core.composed_config import method_config
from serac.core.context_prefixes import generate_prefixes, prefixed_prompts
from serac.core.editor import WeightEditor
from serac.core.key_value_config import KeyValueConfig
from serac.core.language_model import LanguageModel
from serac.core.layer_statistics import second_moments
from serac.core.models import load_language_model
from serac.core.records import EditRequest
from serac.core.saving import read_editor_config, write_editor_config
from serac.core.subject_tokens import check_subject, last_subject_token
from serac.core.text_checks import check_edits
from serac.core.weight_deltas import check_saved_files, load_edits_and_deltas, save_edits_and_deltas, write_weights


@dataclass(frozen=True)
class AppliedEdit:
    prompt: str
    target: str
    subject: str
    batch_number: int  # edits made by the same add_edits call were computed together


@dataclass(frozen=True)
class EditContext:
    """One edit as the steps see it: its prompts (bare + prefixed) with the subject's last token in each,
    and its KL prompts with theirs."""

    request: EditRequest
    prompts: list[str]
    positions: list[int]
    kl_prompts: list[str]
    kl_positions: list[int]


class KeyValueEditor(WeightEditor, ABC):
    """Base of ROME and MEMIT (see the module docstring)."""

    name: ClassVar[str]
    config_class: ClassVar[type[KeyValueConfig]]

    def __init__(self, language_model: LanguageModel, config: KeyValueConfig | None = None):
        config = config if config is not None else self.config_class()
        if type(config) is not self.config_class:
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.language_model = language_model
        language_model.model.eval()  # dropout would make an edit, and its replay by remove_edit, irreproducible
        self.modules = {name: nethook.get_module(language_model.model, name) for name in self.edited_module_names()}
        # Only the edited matrices are copied: they are all an edit changes.
        self.unedited = {name: module.weight.detach().clone() for name, module in self.modules.items()}
        self._deltas = {name: torch.zeros_like(weight) for name, weight in self.unedited.items()}
        self._edits: dict[str, AppliedEdit] = {}
        self._next_batch_number = 0
        self._prefixes: list[str] | None = None
        self._second_moments: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_pretrained(cls, model_name: str, config: KeyValueConfig | None = None, device=None) -> "KeyValueEditor":
        """An editor of the named model (`serac.core.models` resolves the name, offline first)."""
        config = replace(config if config is not None else cls.config_class(), model_name=model_name)
        return cls(load_language_model(model_name, device, config.prompt_format), config)

    @classmethod
    def from_config(cls, config: dict) -> "KeyValueEditor":
        """The editor of the composed CLI config: the model from `model`, the rest from `alg.<name>`."""
        method = method_config(cls.config_class, config, cls.name)
        if method.data_dir is None and config.get("data_dir"):
            method = replace(method, data_dir=config["data_dir"])
        return cls.from_pretrained(method.model_name, method, device=config.get("device"))

    # What a method says

    @abstractmethod
    def edited_module_names(self) -> list[str]:
        """Dotted names of the linear modules this editor rewrites."""

    @abstractmethod
    def compute_updates(self, edits: list[EditContext]) -> None:
        """Apply the batch `edits` to the weights through `add_update` (the model holds the earlier edits)."""

    # What the steps use

    def prefixes(self) -> list[str]:
        if self._prefixes is None:
            with self._unedited_weights():
                self._prefixes = generate_prefixes(
                    self.language_model, self.config.num_prefixes, self.config.prefix_length, self.config.prefix_seed
                )
        return self._prefixes

    def second_moments(self) -> dict[str, torch.Tensor]:
        """C = E[k kᵀ] of each edited module's input, from the unedited weights (disk-cached)."""
        if self._second_moments is None:
            with self._unedited_weights():
                self._second_moments = second_moments(
                    self.language_model, list(self.modules), self.config.text_sample(), self.config.model_name
                )
        return self._second_moments

    @torch.no_grad()
    def add_update(self, name: str, update: torch.Tensor) -> None:
        """Add an [out, in] update to the named module's weight (laid out for Linear or Conv1D)."""
        delta = self._deltas[name] + nethook.in_weight_layout(self.modules[name], update).to(self._deltas[name])
        self._set_deltas({**self._deltas, name: delta})

    # Editing

    def add_edits(self, edits: Sequence[EditRequest | tuple]) -> list[str]:
        """Apply `edits` together; each needs a subject that occurs in its prompt (else a ValueError naming it)."""
        requests = check_edits(edits)
        for index, request in enumerate(requests):
            check_subject(request.prompt, request.subject, f"edit {index} ({request.prompt!r})")
        if not requests:
            return []
        self._apply_batch(requests)
        ids = [uuid.uuid4().hex for _ in requests]
        for edit_id, request in zip(ids, requests):
            self._edits[edit_id] = AppliedEdit(request.prompt, request.target, request.subject, self._next_batch_number)
        self._next_batch_number += 1
        return ids

    def _apply_batch(self, requests: list[EditRequest]) -> None:
        before = self._deltas
        try:
            self.compute_updates([self._context(request) for request in requests])
        except BaseException:
            self._set_deltas(before)  # a failed batch must not leave half-applied updates
            raise

    def _context(self, request: EditRequest) -> EditContext:
        prompts = prefixed_prompts(request.prompt, self.prefixes())
        kl_prompts = [template.replace("{}", request.subject) for template in self.config.kl_prompts]
        return EditContext(
            request,
            prompts,
            [last_subject_token(self.language_model, prompt, request.subject) for prompt in prompts],
            kl_prompts,
            [last_subject_token(self.language_model, prompt, request.subject) for prompt in kl_prompts],
        )

    def edit_ids(self) -> list[str]:
        return list(self._edits)

    def remove_edit(self, edit_id: str) -> None:
        """Undo one edit exactly by resetting and replaying the others in their batches (see the module docstring)."""
        if edit_id not in self._edits:
            raise KeyError(f"no edit with id {edit_id!r}")
        remaining = {key: edit for key, edit in self._edits.items() if key != edit_id}
        self.reset()
        for number in sorted({edit.batch_number for edit in remaining.values()}):
            members = {key: edit for key, edit in remaining.items() if edit.batch_number == number}
            self._apply_batch([EditRequest(edit.prompt, edit.target, edit.subject) for edit in members.values()])
            self._edits.update(members)
        self._next_batch_number = _after_last_batch(self._edits)

    def reset(self) -> None:
        """Write back the unedited weights (bit for bit) and forget every edit."""
        self._set_deltas({name: torch.zeros_like(weight) for name, weight in self.unedited.items()})
        self._edits.clear()
        self._next_batch_number = 0

    def weight_deltas(self) -> dict[str, torch.Tensor]:
        """Edited minus unedited value of every edited weight (a copy)."""
        return {name: delta.clone() for name, delta in self._deltas.items()}

    def _set_deltas(self, deltas: dict[str, torch.Tensor]) -> None:
        write_weights({name: module.weight for name, module in self.modules.items()}, self.unedited, deltas)
        self._deltas = deltas

    @contextmanager
    def _unedited_weights(self):
        deltas = self._deltas
        self._set_deltas({name: torch.zeros_like(weight) for name, weight in self.unedited.items()})
        try:
            yield
        finally:
            self._set_deltas(deltas)

    # Persistence

    def save(self, path: str | Path) -> None:
        """`editor.json` (the config), `edits.json` (the edits, for `remove_edit`) and the weight deltas."""
        folder = write_editor_config(path, self.name, self.config)
        save_edits_and_deltas(folder, [{"id": key, **asdict(edit)} for key, edit in self._edits.items()], self._deltas)

    @classmethod
    def load(cls, path: str | Path, device=None) -> "KeyValueEditor":
        config = read_editor_config(path, cls.name, cls.config_class)
        check_saved_files(path, cls.name)
        editor = cls.from_pretrained(config.model_name, config, device=device)
        rows, deltas = load_edits_and_deltas(path, editor.unedited, editor.language_model.device)
        editor._set_deltas(deltas)
        for row in rows:
            editor._edits[row["id"]] = AppliedEdit(row["prompt"], row["target"], row["subject"], row["batch_number"])
        editor._next_batch_number = _after_last_batch(editor._edits)
        return editor


def _after_last_batch(edits: dict[str, AppliedEdit]) -> int:
    return max((edit.batch_number for edit in edits.values()), default=-1) + 1
