"""The ROME editor: each edit is one rank-one update of one MLP output matrix.

Per edit (steps in `serac.core`): the bare prompt and its N model-written prefixes
(`context_prefixes`); the subject's last token in each (`subject_tokens`); k* = the mean input of
the MLP output matrix there (`edit_keys`); v* = the output there that makes the model say the
target, by Adam with the KL term (`edit_values`); C from `layer_statistics`; then the closed form
of `compute_rank_one_update`. A batch of edits is applied one after another, each on the model
the previous ones left (as in the authors' code; ROME has no joint batch update — use MEMIT).

Departures from the paper / authors' code: v* replaces the output at the subject token (the code
adds a shift to each prompt's own output); z₀ and k* are means over the same prompts, so Ŵk* = v*
holds for the averaged key itself; the prefixes are sampled from the BOS token with top-k 5 and
N is `num_prefixes` (paper 20, default here 50 as the issue asks; benchmarks state what they used);
C is estimated on short data-set sentences (`layer_statistics`), not on Wikipedia.

`remove_edit` is exact by reset + replay (see `serac.core.key_value_editor`).
"""

from typing import ClassVar

import torch

from mend.rome.compute_rank_one_update import rank_one_update
from mend.rome.config import ROMEConfig
from serac.core.architectures import mlp_output_name
from serac.core.edit_keys import activations_at
from serac.core.edit_values import optimise_value
from serac.core.key_value_editor import EditContext, KeyValueEditor


class ROMEEditor(KeyValueEditor):
    """Rank-One Model Editing on the shared editor interface; edits need a subject (see `add_edits`)."""

    name: ClassVar[str] = "rome"
    config_class: ClassVar[type[ROMEConfig]] = ROMEConfig

    def edited_module_names(self) -> list[str]:
        model, config = self.language_model.model, self.config
        return [mlp_output_name(model, config.layer, config.stack, tuple(config.mlp_output_modules))]

    def compute_updates(self, edits: list[EditContext]) -> None:
        (name,) = self.modules
        module = self.modules[name]
        second_moment = self.second_moments()[name]
        for edit in edits:
            targets = [edit.request.target] * len(edit.prompts)
            key = activations_at(self.language_model, name, edit.prompts, targets, edit.positions, read="input").mean(dim=0)
            with torch.no_grad():  # W k* (+ bias): the module is linear, so this is also its mean output there
                current_value = module(key.to(module.weight.dtype).unsqueeze(0))[0]
            value = optimise_value(
                self.language_model, name, edit.prompts, edit.positions, edit.request.target,
                edit.kl_prompts, edit.kl_positions, current_value, self.config.value_settings(),
            )
            self.add_update(name, rank_one_update(key, value, current_value, second_moment))
