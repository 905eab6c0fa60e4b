"""The MEND editor: edits rewrite the model's MLP weights with the update MEND's editor networks compute.

    editor = MENDEditor.load("trained-mend")   # or MENDEditor.from_pretrained("smollm2-135m")
    edit_id = editor.add_edit("Who is the president of the US?", "Ada Lovelace")
    editor.query("Who leads the United States?")

`add_edits` edits with a whole batch in one update (the paper's batched edits): the sum of
the updates each edit would make alone from the same weights, since each edit's gradient
factors do not depend on the batch (see `compute_gradient_factors`). Successive calls
accumulate (each update is computed on the weights the earlier ones left). Each edit's own share of its
batch's update is kept as factors (a few vectors per token, not a weight-sized matrix), so
`remove_edit` can subtract it. Under sequential edits that is approximate: later updates
were computed on weights that still held the removed edit, and they stay. Removing the last
remaining edit, and `reset`, restore the unedited weights bit for bit from a copy of the
edited matrices (only those are copied).
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch
from safetensors.torch import load_file, save_file

from mend.mend.compute_gradient_factors import (
    GradientFactors,
    compute_gradient_factors,
)
from mend.mend.config import MENDConfig
from mend.mend.edited_modules import edited_modules
from mend.mend.pseudo_gradient import GradientTransform, weight_deltas
from serac.core import nethook
from serac.core.composed_config import method_config
from serac.core.editor import StoredEdit, WeightEditor
from serac.core.language_model import LanguageModel
from serac.core.models import load_language_model
from serac.core.records import EditRequest
from serac.core.saving import (
    CONFIG_FILE,
    NotASavedEditorError,
    read_editor_config,
    write_atomically,
    write_editor_config,
)
from serac.core.setting_checks import settle_prompt_format
from serac.core.text_checks import check_edits

NETWORKS_FILE = "editor_networks.safetensors"
EDITS_FILE = "edits.json"
UPDATES_FILE = "edit_updates.safetensors"


@dataclass(frozen=True)
class AppliedEdit:
    prompt: str
    target: str
    update: dict[str, GradientFactors]  # module name -> factors of this edit's weight update


class MENDEditor(WeightEditor):
    """Edits `language_model` in place with MEND. The editor owns the model: it freezes it."""

    name: ClassVar[str] = "mend"

    def __init__(self, language_model: LanguageModel, config: MENDConfig | None = None, transform: GradientTransform | None = None):
        config = config if config is not None else MENDConfig()
        model = language_model.model
        module_names = edited_modules(model, config)
        if transform is None:
            transform = GradientTransform.for_model(model, module_names, config)
        if transform.module_names != module_names:
            raise ValueError(f"the editor networks edit {transform.module_names}, the config {module_names}")
        model.requires_grad_(False)
        # saved: a reloaded editor edits the same layers, prompted the same way
        self.config = replace(settle_prompt_format(config, language_model), edit_modules=module_names)
        self.language_model = language_model
        self.transform = transform.to(language_model.device).eval()
        self._weights = {name: nethook.get_module(model, name).weight for name in module_names}
        self._unedited = {name: weight.detach().clone() for name, weight in self._weights.items()}
        self._edits: dict[str, AppliedEdit] = {}

    @classmethod
    def from_pretrained(cls, name_or_path: str, config: MENDConfig | None = None, device=None) -> "MENDEditor":
        """A saved MEND editor (a folder written by `save`), or else an editor of the named base
        model with untrained, identity-initialised editor networks (each edit is then a plain
        gradient step of size `config.edit_lr`)."""
        if (Path(name_or_path) / CONFIG_FILE).is_file():
            return cls.load(name_or_path, device=device)
        config = replace(config if config is not None else MENDConfig(), model_name=name_or_path)
        return cls(load_language_model(config.model_name, device, config.prompt_format), config)

    # Editing

    def add_edits(self, edits: Sequence[EditRequest | tuple]) -> list[str]:
        edits = [(edit.prompt, edit.target) for edit in check_edits(edits)]
        if not edits:
            return []
        batch = self.language_model.batch([prompt for prompt, _ in edits], [target for _, target in edits])
        factors = compute_gradient_factors(self.language_model, batch, list(self._weights))
        with torch.no_grad():
            update = self.transform(factors)
        ids = []
        for row, (prompt, target) in enumerate(edits):
            edit = AppliedEdit(prompt, target, {name: share.of_rows(row) for name, share in update.items()})
            self._apply(edit, sign=1)
            ids.append(uuid.uuid4().hex)
            self._edits[ids[-1]] = edit
        return ids

    @torch.no_grad()
    def _apply(self, edit: AppliedEdit, sign: int) -> None:
        for name, delta in weight_deltas(self.language_model.model, edit.update).items():
            self._weights[name].add_(delta, alpha=sign)

    def edit_ids(self) -> list[str]:
        return list(self._edits)

    def stored_edits(self) -> list[StoredEdit]:
        return [StoredEdit(edit_id, edit.prompt, edit.target) for edit_id, edit in self._edits.items()]

    def remove_edit(self, edit_id: str) -> None:
        """Subtract the edit's update (approximate after later edits: see the module docstring)."""
        if edit_id not in self._edits:
            raise KeyError(f"no edit with id {edit_id!r}")
        self._apply(self._edits.pop(edit_id), sign=-1)
        if not self._edits:
            self.reset()

    @torch.no_grad()
    def reset(self) -> None:
        for name, weight in self._weights.items():
            weight.copy_(self._unedited[name])
        self._edits.clear()

    # Persistence

    def save(self, path: str | Path) -> None:
        """`editor.json` (the config), the editor networks, and the applied edits with their updates."""
        folder = write_editor_config(path, self.name, self.config)
        networks = {key: tensor.detach().cpu().contiguous() for key, tensor in self.transform.state_dict().items()}
        write_atomically(folder / NETWORKS_FILE, lambda staging: save_file(networks, str(staging)))
        edits = [{"id": edit_id, "prompt": edit.prompt, "target": edit.target} for edit_id, edit in self._edits.items()]
        write_atomically(folder / EDITS_FILE, lambda staging: staging.write_text(json.dumps(edits, indent=2)))
        updates = {
            f"{edit_id}/{name}/{part}": getattr(factors, part).detach().cpu().contiguous()
            for edit_id, edit in self._edits.items()
            for name, factors in edit.update.items()
            for part in ("inputs", "output_grads")
        }
        write_atomically(folder / UPDATES_FILE, lambda staging: save_file(updates, str(staging)))

    @classmethod
    def load(cls, path: str | Path, device=None) -> "MENDEditor":
        folder = Path(path)
        config = read_editor_config(folder, cls.name, MENDConfig)
        for file in (NETWORKS_FILE, EDITS_FILE, UPDATES_FILE):
            if not (folder / file).is_file():
                raise NotASavedEditorError(f"{path} is not a complete saved mend editor: {file} is missing")
        editor = cls.from_pretrained(config.model_name, config, device=device)
        try:
            editor.transform.load_state_dict(load_file(str(folder / NETWORKS_FILE), device=str(editor.language_model.device)))
        except RuntimeError as error:
            raise NotASavedEditorError(f"{path}: the saved editor networks do not fit its config: {error}") from None
        updates = load_file(str(folder / UPDATES_FILE), device=str(editor.language_model.device))
        for row in json.loads((folder / EDITS_FILE).read_text()):
            try:
                update = {name: _one_row(updates[f"{row['id']}/{name}/inputs"], updates[f"{row['id']}/{name}/output_grads"])
                          for name in editor._weights}
            except KeyError as error:
                raise NotASavedEditorError(f"{path}: {UPDATES_FILE} lacks the update {error} of edit {row['id']}") from None
            edit = AppliedEdit(row["prompt"], row["target"], update)
            editor._apply(edit, sign=1)
            editor._edits[row["id"]] = edit
        return editor

    @classmethod
    def from_config(cls, config: dict) -> "MENDEditor":
        """The editor of the composed CLI config (`model`, `alg.mend`), with untrained editor networks."""
        method = method_config(MENDConfig, config, "mend")
        return cls.from_pretrained(method.model_name, method, device=config.get("device"))


def _one_row(inputs: torch.Tensor, output_grads: torch.Tensor) -> GradientFactors:
    return GradientFactors(inputs, output_grads, torch.zeros(len(inputs), dtype=torch.long, device=inputs.device))

