"""The fine-tuning editors: FT, FT+KL and FT-L are one editor with different configs.

Each `add_edits` call is one fine-tuning run on all its (prompt, target) pairs together;
successive calls keep training the already edited weights, so edits accumulate.

`remove_edit` is exact: fine-tuning entangles edits (every later run starts from the weights
the earlier ones left), so subtracting one edit's weight change would not give the model the
other edits were trained from. Instead the editor resets and replays the remaining edits, in
their original batches and order, which reproduces the weights as if the removed edit had
never been made (deterministic on one machine; costs one fine-tuning run per remaining batch).
"""

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch

from mend.finetune.config import FTConfig, FTKLConfig, FTLConfig
from mend.finetune.fine_tune import fine_tune
from mend.finetune.locality import LocalityAnchor, training_locality_prompts
from mend.finetune.trainable_parameters import select_trainable_parameters
from serac.core.composed_config import method_config
from serac.core.editor import WeightEditor
from serac.core.language_model import LanguageModel
from serac.core.models import load_language_model
from serac.core.records import EditRequest
from serac.core.saving import read_editor_config, write_editor_config
from serac.core.text_checks import check_edits
from serac.core.weight_deltas import check_saved_files, load_edits_and_deltas, save_edits_and_deltas, write_weights


@dataclass(frozen=True)
class AppliedEdit:
    prompt: str
    target: str
    batch_number: int  # edits made by the same add_edits call share one fine-tuning run


class FTEditor(WeightEditor):
    """Edits by fine-tuning some of the model's weights (see `FTConfig`) on the edit pairs.

    The editor owns `language_model`'s weights: it freezes every parameter it does not train
    and writes the trained ones in place. Its state is one delta per trained weight: the model
    always holds exactly `unedited + delta`, which is what `load` rebuilds from the saved
    deltas, so a saved editor reloads bit for bit.
    """

    name: ClassVar[str] = "ft"
    config_class: ClassVar[type[FTConfig]] = FTConfig

    def __init__(
        self, language_model: LanguageModel, config: FTConfig | None = None, locality_prompts: Sequence[str] | None = None
    ):
        config = config if config is not None else self.config_class()
        if type(config) is not self.config_class:
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        if locality_prompts is not None:
            config = replace(config, locality_prompts=list(locality_prompts))
        self.config = config
        self.language_model = language_model
        language_model.model.eval()  # dropout would make an edit, and its replay by remove_edit, irreproducible
        self.trainable = select_trainable_parameters(language_model.model, config.parameter_pattern, config.layers)
        for parameter in language_model.model.parameters():
            parameter.requires_grad_(False)
        for parameter in self.trainable.values():
            parameter.requires_grad_(True)
        # Only the trained weights are copied: they are all an edit changes.
        self.unedited = {name: parameter.detach().clone() for name, parameter in self.trainable.items()}
        self._deltas = {name: torch.zeros_like(weight) for name, weight in self.unedited.items()}
        self.locality = LocalityAnchor(language_model, config.locality_prompts) if config.kl_weight > 0 else None
        self._edits: dict[str, AppliedEdit] = {}
        self._next_batch_number = 0

    @classmethod
    def from_pretrained(
        cls, model_name: str, config: FTConfig | None = None, device=None, locality_prompts: Sequence[str] | None = None
    ) -> "FTEditor":
        """An editor of the named model (`serac.core.models` resolves the name, offline first)."""
        config = replace(config if config is not None else cls.config_class(), model_name=model_name)
        return cls(load_language_model(model_name, device, config.prompt_format), config, locality_prompts)

    @classmethod
    def from_config(cls, config: dict) -> "FTEditor":
        """The editor of the composed CLI config: the model from `model`, the rest from `alg.<name>`."""
        method = method_config(cls.config_class, config, cls.name)
        return cls.from_pretrained(method.model_name, method, device=config.get("device"))

    # Editing

    def add_edits(self, edits: Sequence[EditRequest | tuple]) -> list[str]:
        edits = [(edit.prompt, edit.target) for edit in check_edits(edits)]
        if not edits:
            return []
        self._fine_tune_on(edits)
        ids = [uuid.uuid4().hex for _ in edits]
        for edit_id, (prompt, target) in zip(ids, edits):
            self._edits[edit_id] = AppliedEdit(prompt, target, self._next_batch_number)
        self._next_batch_number += 1
        return ids

    def _fine_tune_on(self, edits: list[tuple[str, str]]) -> None:
        batch = self.language_model.batch([prompt for prompt, _ in edits], [target for _, target in edits])
        try:
            fine_tune(self.language_model, batch, self.trainable, self.unedited, self.config, self.locality)
        except BaseException:
            self._set_deltas(self._deltas)  # a failed run must not leave half-trained weights
            raise
        deltas = {name: parameter.detach() - self.unedited[name] for name, parameter in self.trainable.items()}
        if self.config.norm_constraint is not None:
            # Rounding in `unedited + delta` must not carry a weight out of FT-L's ball.
            epsilon = self.config.norm_constraint
            deltas = {name: delta.clamp(-epsilon, epsilon) for name, delta in deltas.items()}
        self._set_deltas(deltas)

    def edit_ids(self) -> list[str]:
        return list(self._edits)

    def remove_edit(self, edit_id: str) -> None:
        """Undo one edit exactly by resetting and replaying the others (see the module docstring)."""
        if edit_id not in self._edits:
            raise KeyError(f"no edit with id {edit_id!r}")
        remaining = {key: edit for key, edit in self._edits.items() if key != edit_id}
        self.reset()
        self._replay(remaining)

    def _replay(self, edits: dict[str, AppliedEdit]) -> None:
        for number in sorted({edit.batch_number for edit in edits.values()}):
            members = {key: edit for key, edit in edits.items() if edit.batch_number == number}
            self._fine_tune_on([(edit.prompt, edit.target) for edit in members.values()])
            self._edits.update(members)
        self._next_batch_number = _after_last_batch(edits)

    def reset(self) -> None:
        """Write back the unedited weights (bit for bit) and forget every edit."""
        self._set_deltas({name: torch.zeros_like(weight) for name, weight in self.unedited.items()})
        self._edits.clear()
        self._next_batch_number = 0

    def weight_deltas(self) -> dict[str, torch.Tensor]:
        """Edited minus unedited value of every trained weight (a copy)."""
        return {name: delta.clone() for name, delta in self._deltas.items()}

    def _set_deltas(self, deltas: dict[str, torch.Tensor]) -> None:
        write_weights(self.trainable, self.unedited, deltas)
        self._deltas = deltas

    # Persistence

    def save(self, path: str | Path) -> None:
        """`editor.json` (the config), `edits.json` (the edits, for `remove_edit`) and the weight deltas."""
        folder = write_editor_config(path, self.name, self.config)
        save_edits_and_deltas(folder, [{"id": key, **asdict(edit)} for key, edit in self._edits.items()], self._deltas)

    @classmethod
    def load(cls, path: str | Path, device=None) -> "FTEditor":
        config = read_editor_config(path, cls.name, cls.config_class)
        editor = cls.from_pretrained(config.model_name, config, device=device)
        check_saved_files(path, cls.name)
        rows, deltas = load_edits_and_deltas(path, editor.unedited, editor.language_model.device)
        editor._set_deltas(deltas)
        for row in rows:
            editor._edits[row["id"]] = AppliedEdit(row["prompt"], row["target"], row["batch_number"])
        editor._next_batch_number = _after_last_batch(editor._edits)
        return editor


class FTKLEditor(FTEditor):
    """FT+KL: FT plus a KL penalty keeping the outputs on a pool of locality prompts unchanged.

    The pool is `config.locality_prompts`, or `locality_prompts=[...]` given to the
    constructor / `from_pretrained` (which replaces the config's). From the CLI, an empty
    `alg.ft_kl.locality_prompts` is filled with `alg.locality_pool_size` locality prompts of
    the experiment's training split, so the pool never overlaps the evaluated edits. The KL
    is always to the unedited model, also after many sequential edits.
    """

    name: ClassVar[str] = "ft_kl"
    config_class: ClassVar[type[FTConfig]] = FTKLConfig

    @classmethod
    def from_config(cls, config: dict) -> "FTKLEditor":
        method = method_config(cls.config_class, config, cls.name)
        if not method.locality_prompts:
            experiment = config["experiment"]
            pool = training_locality_prompts(
                experiment["dataset"], experiment["train_split"], config["alg"]["locality_pool_size"], config.get("data_dir")
            )
            method = replace(method, locality_prompts=pool)
        return cls.from_pretrained(method.model_name, method, device=config.get("device"))


class FTLEditor(FTEditor):
    """FT-L: fine-tune one layer with every weight kept within +-epsilon of its unedited value."""

    name: ClassVar[str] = "ft_l"
    config_class: ClassVar[type[FTConfig]] = FTLConfig


def _after_last_batch(edits: dict[str, AppliedEdit]) -> int:
    return max((edit.batch_number for edit in edits.values()), default=-1) + 1

