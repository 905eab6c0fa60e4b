"""Step 1 of MEND: the rank-1 factors of the edit loss's gradient at each edited layer.

For a linear layer the weight gradient is Σ_i δ_i u_iᵀ: u_i the layer's input at token i,
δ_i the loss gradient at its output. MEND transforms the pairs (u_i, δ_i), never the full
gradient matrix.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from serac.core import nethook
from serac.core.language_model import LanguageModel


@dataclass
class GradientFactors:
    """Per-token factors of one layer's weight gradient (or of an update built from them).

    inputs [N, in], output_grads [N, out], rows [N]: the batch row (edit) each token belongs to.
    """

    inputs: torch.Tensor
    output_grads: torch.Tensor
    rows: torch.Tensor

    def of_rows(self, row: int) -> "GradientFactors":
        keep = self.rows == row
        return GradientFactors(self.inputs[keep], self.output_grads[keep], self.rows[keep])


def compute_gradient_factors(
    language_model: LanguageModel, batch: dict[str, torch.Tensor], module_names: Sequence[str]
) -> dict[str, GradientFactors]:
    """u and δ of the target NLL of `batch` at each named layer, detached from the model.

    Tokens where u or δ is all zero (padding, tokens after the target) contribute nothing
    to the gradient and are dropped, so a transformed gradient cannot revive them.
    """
    model = language_model.model
    weights = {f"{name}.weight": nethook.get_module(model, name).weight.detach().requires_grad_() for name in module_names}
    # The weights are passed as fresh leaves: gradients stop there, never reaching the model.
    with torch.enable_grad(), nethook.Trace(model, module_names, retain_input=True, retain_grad=True) as trace:
        loss = language_model.nll(batch, parameters=weights)
        torch.autograd.grad(loss, list(weights.values()))
    factors = {}
    for name in module_names:
        u, delta = trace[name].input, trace[name].output_grad
        tokens_per_row = u[0].numel() // u.shape[-1]
        rows = torch.arange(u.shape[0], device=u.device).repeat_interleave(tokens_per_row)
        u, delta = u.reshape(-1, u.shape[-1]), delta.reshape(-1, delta.shape[-1])
        keep = (u != 0).any(-1) & (delta != 0).any(-1)
        factors[name] = GradientFactors(u[keep].float(), delta[keep].float(), rows[keep])
    return factors
