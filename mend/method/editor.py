"""The MEND editor: edits rewrite the model's MLP weights with the update MEND's editor networks compute.

    editor = MENDEditor.load("trained-mend")   # or MENDEditor.from_pretrained("smollm2-135m")
    edit_id = editor.add_edit("Who is the president of the US?", "Ada Lovelace")
    editor.query("Who leads the United States?")

`add_edits` edits with a whole batch in one update; successive calls accumulate (each
update is computed on the weights the earlier ones left). Each edit's own share of its
batch's update is kept as factors (a few vectors per token, not a weight-sized matrix), so
`remove_edit` can subtract it. Under sequential edits that is approximate: later updates
were computed on weights that still held the removed edit, and they stay. Removing the last
remaining edit, and `reset`, restore the unedited weights bit for bit from a copy of the
edited matrices (only those are copied).
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import ClassVar

import torch
from safetensors.torch import load_file, save_file

from mend.method.compute_gradient_factors import (
    GradientFactors,
    compute_gradient_factors,
)
from mend.method.config import MENDConfig
from mend.method.edited_modules import edited_modules
from mend.method.pseudo_gradient import GradientTransform, weight_deltas
from mend.method.training_loss import MENDTraining
from serac.core import nethook
from serac.core.editor import QueryResult, WeightEditor
from serac.core.experiment import training_records
from serac.core.language_model import LanguageModel
from serac.core.models import load_model, load_tokenizer
from serac.core.saving import (
    CONFIG_FILE,
    NotASavedEditorError,
    read_editor_config,
    write_atomically,
    write_editor_config,
)
from serac.core.text_checks import answer_length, check_edits, check_texts
from serac.core.train_config import TrainConfig
from serac.core.training import load_trained_weights, train

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
        self.config = replace(config, edit_modules=module_names)  # saved: a reloaded editor edits the same layers
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
        language_model = LanguageModel(
            load_model(config.model_name), load_tokenizer(config.model_name), device=device, prompt_format=config.prompt_format
        )
        return cls(language_model, config)

    # Editing

    def add_edits(self, edits: Sequence[tuple[str, str]]) -> list[str]:
        edits = check_edits(edits)
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

    # Answering

    def query_batch(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[QueryResult]:
        prompts = check_texts(prompts, "prompt")
        max_new_tokens = answer_length(max_new_tokens, self.config.max_new_tokens)
        return [QueryResult(text) for text in self.language_model.generate(prompts, max_new_tokens)]

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

    # Command line (see serac.core.cli)

    @classmethod
    def from_config(cls, config: dict) -> "MENDEditor":
        return cls.from_pretrained(config["model"]["name"], mend_config(config), device=config.get("device"))

    @classmethod
    def train_from_config(cls, config: dict, output_dir: Path) -> Path:
        """Train the editor networks with the shared loop (`alg.training` holds the TrainConfig
        fields); keeps the best validation weights and saves the editor to `output_dir/editor`."""
        output_dir = Path(output_dir)
        editor = cls.from_config(config)
        run = TrainConfig(output_dir=str(output_dir / "training"), **config["alg"].get("training", {}))
        training = MENDTraining(editor.language_model, editor.config, run.lr, editor.transform)
        train_records, val_records = training_records(config)
        result = train(training, train_records, val_records, run)
        if result.best_dir is not None:
            load_trained_weights(training, result.best_dir)
        editor.transform.eval()
        saved = output_dir / "editor"
        editor.save(saved)
        return saved


def mend_config(config: dict) -> MENDConfig:
    """MENDConfig from the composed CLI config: the base model comes from `model`, the rest from `alg.mend`."""
    settings = dict(config["alg"].get("mend") or {})
    unknown = set(settings) - {field.name for field in fields(MENDConfig)}
    if unknown:
        raise ValueError(f"unknown MEND settings {sorted(unknown)} in alg.mend")
    settings["model_name"] = config["model"]["name"]
    settings["prompt_format"] = config["model"].get("prompt_format", "plain")
    return MENDConfig(**settings)



def _one_row(inputs: torch.Tensor, output_grads: torch.Tensor) -> GradientFactors:
    return GradientFactors(inputs, output_grads, torch.zeros(len(inputs), dtype=torch.long, device=inputs.device))

