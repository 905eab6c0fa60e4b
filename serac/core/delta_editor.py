"""A weight editor whose state is one delta per edited weight (FT, ROME, MEMIT).

A subclass says which weights it edits (`track_weights`) and how one batch of edits changes
them (`apply_batch`); this base keeps everything else:

- the model always holds exactly `unedited + delta` for each edited weight; `reset` writes the
  unedited copies back (bit for bit), and only the edited weights are copied;
- a batch that fails leaves the weights as they were before it;
- `remove_edit` is exact by reset + replay: edits entangle (every later batch was computed on
  the weights the earlier ones left), so the other edits are re-applied in their original
  batches and order (deterministic on one machine; costs one batch computation per batch);
- `save` writes `editor.json`, `edits.json` (with subjects) and the deltas as safetensors
  (`serac.core.weight_deltas`); `load` rebuilds the model and adds the saved deltas, so a
  saved editor reloads bit for bit. No pickles.
"""

import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch

from serac.core.editor import StoredEdit, WeightEditor
from serac.core.records import EditRequest
from serac.core.saving import read_editor_config, write_editor_config
from serac.core.text_checks import check_edits
from serac.core.weight_deltas import check_saved_files, load_edits_and_deltas, save_edits_and_deltas, write_weights


@dataclass(frozen=True)
class AppliedEdit:
    prompt: str
    target: str
    subject: str | None
    batch_number: int  # edits made by the same add_edits call were computed together


class DeltaEditor(WeightEditor, ABC):
    """Base of the editors whose state is weight deltas (see the module docstring)."""

    name: ClassVar[str]
    config_class: ClassVar[type]

    def track_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Start editing `weights` (name -> the model's tensor, written in place) from their current values."""
        self.weights = weights
        self.unedited = {name: weight.detach().clone() for name, weight in weights.items()}
        self._deltas = {name: torch.zeros_like(weight) for name, weight in self.unedited.items()}
        self._edits: dict[str, AppliedEdit] = {}
        self._next_batch_number = 0

    @abstractmethod
    def apply_batch(self, requests: list[EditRequest]) -> None:
        """Edit the weights with one batch, through `set_deltas` (the model holds the earlier edits)."""

    def check_requests(self, requests: list[EditRequest]) -> None:
        """Refuse edits this method cannot make (a ValueError naming the edit); all are fine by default."""

    # Editing

    def add_edits(self, edits: Sequence[EditRequest | tuple]) -> list[str]:
        requests = check_edits(edits)
        self.check_requests(requests)
        if not requests:
            return []
        self._apply(requests)
        ids = [uuid.uuid4().hex for _ in requests]
        for edit_id, request in zip(ids, requests):
            self._edits[edit_id] = AppliedEdit(request.prompt, request.target, request.subject, self._next_batch_number)
        self._next_batch_number += 1
        return ids

    def _apply(self, requests: list[EditRequest]) -> None:
        before = self._deltas
        try:
            self.apply_batch(requests)
        except BaseException:
            self.set_deltas(before)  # a failed batch must not leave half-applied updates
            raise

    def edit_ids(self) -> list[str]:
        return list(self._edits)

    def stored_edits(self) -> list[StoredEdit]:
        return [StoredEdit(key, edit.prompt, edit.target, edit.subject) for key, edit in self._edits.items()]

    def remove_edit(self, edit_id: str) -> None:
        """Undo one edit exactly by resetting and replaying the others in their batches (see the module docstring)."""
        if not isinstance(edit_id, str) or edit_id not in self._edits:
            raise KeyError(f"no edit with id {edit_id!r}")
        remaining = {key: edit for key, edit in self._edits.items() if key != edit_id}
        self.reset()
        for number in sorted({edit.batch_number for edit in remaining.values()}):
            members = {key: edit for key, edit in remaining.items() if edit.batch_number == number}
            self._apply([EditRequest(edit.prompt, edit.target, edit.subject) for edit in members.values()])
            self._edits.update(members)
        self._next_batch_number = _after_last_batch(self._edits)

    def reset(self) -> None:
        """Write back the unedited weights (bit for bit) and forget every edit."""
        self.set_deltas({name: torch.zeros_like(weight) for name, weight in self.unedited.items()})
        self._edits.clear()
        self._next_batch_number = 0

    def weight_deltas(self) -> dict[str, torch.Tensor]:
        """Edited minus unedited value of every edited weight (a copy)."""
        return {name: delta.clone() for name, delta in self._deltas.items()}

    def set_deltas(self, deltas: dict[str, torch.Tensor]) -> None:
        write_weights(self.weights, self.unedited, deltas)
        self._deltas = deltas

    # Persistence

    def save(self, path: str | Path) -> None:
        """`editor.json` (the config), `edits.json` (the edits, for `remove_edit`) and the weight deltas."""
        folder = write_editor_config(path, self.name, self.config)
        save_edits_and_deltas(folder, [{"id": key, **asdict(edit)} for key, edit in self._edits.items()], self._deltas)

    @classmethod
    def load(cls, path: str | Path, device=None) -> "DeltaEditor":
        config = read_editor_config(path, cls.name, cls.config_class)
        check_saved_files(path, cls.name)
        editor = cls.from_pretrained(config.model_name, config, device=device)
        rows, deltas = load_edits_and_deltas(path, editor.unedited, editor.language_model.device)
        editor.set_deltas(deltas)
        for row in rows:  # FT editors saved before subjects were kept have none
            editor._edits[row["id"]] = AppliedEdit(row["prompt"], row["target"], row.get("subject"), row["batch_number"])
        editor._next_batch_number = _after_last_batch(editor._edits)
        return editor


def _after_last_batch(edits: dict[str, AppliedEdit]) -> int:
    return max((edit.batch_number for edit in edits.values()), default=-1) + 1
