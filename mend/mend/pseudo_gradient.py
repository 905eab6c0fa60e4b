"""Step 2 of MEND: turn each layer's gradient factors into a weight update.

The editor network maps z = concat(u, δ) to g(z), split back into (ũ, δ̃), the factors of
the pseudo-gradient Σ_i δ̃_i ũ_iᵀ. The edited weight is W̃ = W − α_l Σ_i δ̃_i ũ_iᵀ, summed over
the edits of a batch and their tokens, with a learned step size α_l per layer.
"""

from collections.abc import Sequence

import torch
from torch import nn

from mend.mend.compute_gradient_factors import GradientFactors
from mend.mend.config import MENDConfig
from mend.mend.editor_network import EditorNetwork
from serac.core import nethook


class GradientTransform(nn.Module):
    """MEND's editor networks for one model: one per edited weight shape, and α per edited layer."""

    def __init__(self, layer_dims: dict[str, tuple[int, int]], config: MENDConfig):
        """`layer_dims` maps each edited module name to its (input, output) sizes, in edit order."""
        super().__init__()
        self.module_names = list(layer_dims)
        self.networks = nn.ModuleDict()
        self._slots: dict[str, tuple[str, int]] = {}  # module name -> (network key, layer index in it)
        for dims in dict.fromkeys(layer_dims.values()):
            key = f"{dims[0]}x{dims[1]}"
            sharing = [name for name, other in layer_dims.items() if other == dims]
            self.networks[key] = EditorNetwork(*dims, n_layers=len(sharing), rank=config.rank, init=config.init)
            self._slots.update({name: (key, layer) for layer, name in enumerate(sharing)})
        # α = edit_lrs_unscaled · edit_lr_scale; see `set_edit_lr_scale`.
        self.edit_lrs_unscaled = nn.Parameter(torch.full((len(self.module_names),), float(config.edit_lr)))
        self.register_buffer("edit_lr_scale", torch.ones(()))

    @property
    def edit_lrs(self) -> torch.Tensor:
        """The step size α of each edited layer, in `module_names` order."""
        return self.edit_lrs_unscaled * self.edit_lr_scale

    @torch.no_grad()
    def set_edit_lr_scale(self, scale: float) -> None:
        """Store α as a parameter times `scale`, leaving α's value unchanged.

        Adam moves a parameter by about its learning rate per step, whatever the gradient's
        size; so with the networks' learning rate `lr`, `scale = lr_alpha / lr` makes α move
        at `lr_alpha` although one optimizer trains both.
        """
        if not scale > 0:
            raise ValueError(f"the step-size scale must be > 0, got {scale!r}")
        self.edit_lrs_unscaled.mul_(self.edit_lr_scale / scale)
        self.edit_lr_scale.fill_(scale)

    @classmethod
    def for_model(cls, model: nn.Module, module_names: Sequence[str], config: MENDConfig) -> "GradientTransform":
        return cls({name: nethook.linear_dims(nethook.get_module(model, name)) for name in module_names}, config)

    def pseudo_gradient(self, factors: dict[str, GradientFactors]) -> dict[str, GradientFactors]:
        """(ũ, δ̃) of every edited layer; in training mode the networks' input statistics are updated first."""
        if set(factors) != set(self.module_names):
            raise ValueError(f"expected gradient factors of {self.module_names}, got {sorted(factors)}")
        if self.training:
            for key, network in self.networks.items():
                rows = [factors[name] for name, slot in self._slots.items() if slot[0] == key]
                network.normalizer.update(torch.cat([torch.cat([f.inputs, f.output_grads], -1) for f in rows]))
        pseudo = {}
        for name in self.module_names:
            key, layer = self._slots[name]
            raw = factors[name]
            inputs, output_grads = self.networks[key](raw.inputs, raw.output_grads, layer)
            pseudo[name] = GradientFactors(inputs, output_grads, raw.rows)
        return pseudo

    def forward(self, factors: dict[str, GradientFactors]) -> dict[str, GradientFactors]:
        """Factors of the weight update: W̃ = W + Σ_i δ'_i u'_iᵀ with u' = ũ and δ' = −α_l δ̃."""
        pseudo = self.pseudo_gradient(factors)
        return {
            name: GradientFactors(step.inputs, -self.edit_lrs[index] * step.output_grads, step.rows)
            for index, (name, step) in enumerate(pseudo.items())
        }


def weight_deltas(model: nn.Module, update_factors: dict[str, GradientFactors]) -> dict[str, torch.Tensor]:
    """Module name -> the update Σ_i δ'_i u'_iᵀ laid out like the module's weight."""
    return {
        name: nethook.weight_update(nethook.get_module(model, name), factors.inputs, factors.output_grads)
        for name, factors in update_factors.items()
    }
