"""The MEMIT editor: a batch of edits spread over the MLP output matrices of a range of layers.

Per batch (steps in `serac.core`): for each edit its prompts and subject tokens, and z_i = the
output of the last block of the range at the subject's last token that makes the model say the
target (`edit_values`, started from that block's mean output h_i^L). Then for each layer l of the
range, bottom up, with the weights the lower layers' updates left: the keys K (`edit_keys`, the
mean MLP-output-matrix input at the subject token over the prefixed prompts), the current h_i^L,
r_i = (z_i − h_i^L)/(L − l + 1) and Δ_l = R Kᵀ (λC + K Kᵀ)⁻¹ (`compute_multi_layer_update`).

Batched: one `add_edits` call is one MEMIT batch (thousands at once work: the solve is
[in, in]); sequential editing is one call per edit. The z_i are optimised one edit at a time.
`remove_edit` is exact by reset + replay (see `serac.core.key_value_editor`). Departures from the
paper are those of ROME's value step (see `mend.rome.editor`'s docstring, shared core steps).
"""

import time
from typing import ClassVar

import torch
from tqdm import tqdm

from mend.memit.compute_multi_layer_update import layer_residuals, multi_layer_update
from mend.memit.config import MEMITConfig
from mend.memit.value_cache import ValueCache, ValueCost
from serac.core.architectures import block_name, mlp_output_name
from serac.core.edit_keys import activations_of_modules_at
from serac.core.edit_values import optimise_value
from serac.core.key_value_editor import EditContext, KeyValueEditor


class MEMITEditor(KeyValueEditor):
    """Mass-Editing Memory in a Transformer on the shared editor interface; edits need a subject."""

    name: ClassVar[str] = "memit"
    config_class: ClassVar[type[MEMITConfig]] = MEMITConfig
    # How long each z read back from the value cache in the last batch took to optimise when it was
    # found, for timing a batch resumed across runs.
    reused_value_costs: list[ValueCost] | tuple = ()

    def edited_module_names(self) -> list[str]:
        model, config = self.language_model.model, self.config
        modules = tuple(config.mlp_output_modules)
        return [mlp_output_name(model, layer, config.stack, modules) for layer in self._layer_indices()]

    def _layer_indices(self) -> list[int]:
        """The range's block indices, non-negative and ascending (out-of-range ones raise here)."""
        model, config = self.language_model.model, self.config
        return sorted(int(block_name(model, layer, config.stack).rsplit(".", 1)[1]) for layer in config.layers)

    def _top_block(self) -> str:
        return block_name(self.language_model.model, self._layer_indices()[-1], self.config.stack)

    def _means_at_subject(self, reads: dict[str, str], edits: list[EditContext]) -> dict[str, torch.Tensor]:
        """{module name: [n, dim]}: each edit's mean input or output (`reads`) at its subject token
        over its prompts, every module read in the same forward passes."""
        prompts = [prompt for edit in edits for prompt in edit.prompts]
        targets = [edit.request.target for edit in edits for _ in edit.prompts]
        positions = [position for edit in edits for position in edit.positions]
        values = activations_of_modules_at(self.language_model, reads, prompts, targets, positions)
        sizes = [len(edit.prompts) for edit in edits]
        return {name: torch.stack([chunk.mean(dim=0) for chunk in value.split(sizes)]) for name, value in values.items()}

    def compute_updates(self, edits: list[EditContext]) -> None:
        top = self._top_block()
        second_moments = self.second_moments()
        initial = self._means_at_subject({top: "output"}, edits)[top]
        cache = self._value_cache(top)
        self.reused_value_costs = []
        targets = torch.stack([
            self._value(edit, start, top, cache)
            for edit, start in tqdm(list(zip(edits, initial)), desc="MEMIT values z", unit="edit", disable=len(edits) == 1)
        ])
        names = list(self.modules)
        # Each layer re-reads every edit's keys and the top block's outputs, in one pass (minutes for a
        # batch of 1,000 on a CPU); before the first layer's update those outputs are still `initial`.
        for index, name in enumerate(tqdm(names, desc="MEMIT layer updates", unit="layer", disable=len(edits) == 1)):
            read = self._means_at_subject({name: "input"} if index == 0 else {name: "input", top: "output"}, edits)
            keys, current = read[name], initial if index == 0 else read[top]
            residuals = layer_residuals(targets, current, len(names) - index)
            self.add_update(name, multi_layer_update(keys, residuals, second_moments[name], self.config.mom2_weight))

    def _value_cache(self, top: str) -> ValueCache | None:
        if self.config.value_cache is None:
            return None
        weights = {name: module.weight for name, module in self.modules.items()}
        return ValueCache(self.config.value_cache, self.config.model_name, weights, top, self.config.value_settings())

    def _value(self, edit: EditContext, start: torch.Tensor, top: str, cache: ValueCache | None) -> torch.Tensor:
        """z for one edit: optimised, or read back from the value cache of an interrupted batch."""
        path = cache.path(edit.prompts, edit.positions, edit.request.target, edit.kl_prompts, edit.kl_positions) if cache else None
        cached = cache.get(path, start.numel()) if cache else None
        if cached is not None:
            self.reused_value_costs.append(cached.cost)
            return cached.z.to(start)
        started, cpu_started = time.perf_counter(), time.process_time()
        value = optimise_value(
            self.language_model, top, edit.prompts, edit.positions, edit.request.target,
            edit.kl_prompts, edit.kl_positions, start, self.config.value_settings(),
        )
        if cache:
            cache.put(path, value, ValueCost(time.perf_counter() - started, time.process_time() - cpu_started))
        return value
