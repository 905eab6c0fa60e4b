"""Step 1 of MEND: the rank-1 factors of the edit loss's gradient at each edited layer.

For a linear layer the weight gradient is Σ_i δ_i u_iᵀ: u_i the layer's input at token i,
δ_i the loss gradient at its output. MEND transforms the pairs (u_i, δ_i), never the full
gradient matrix.

The loss is each edit's mean target NLL, summed over the edits of a batch: an edit's factors
are then the same whether it is made alone or with k - 1 others (a mean over the whole
batch would shrink them by about k, away from the scale the editor networks' normaliser
was fitted on), so a batch of k edits is one update, the sum of the k updates each edit
would make alone from the same weights.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from serac.core import nethook
from serac.core.language_model import IGNORE, LanguageModel
from serac.core.lower_blocks import LowerBlockStates


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


def summed_edit_nll(
    language_model: LanguageModel, batch: dict[str, torch.Tensor], parameters: dict, lower: LowerBlockStates | None = None
) -> torch.Tensor:
    """Σ over the batch's rows of each row's mean target NLL (`lower`: see `serac.core.lower_blocks`)."""
    logits, labels = language_model.target_logits(batch, parameters, lower=lower, target_columns_only=True)
    token_nll = F.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=IGNORE, reduction="none")
    targets = (labels != IGNORE).sum(-1).clamp(min=1)
    return (token_nll.sum(-1) / targets).sum()


def compute_gradient_factors(
    language_model: LanguageModel,
    batch: dict[str, torch.Tensor],
    module_names: Sequence[str],
    lower: LowerBlockStates | None = None,
) -> dict[str, GradientFactors]:
    """u and δ of `summed_edit_nll` of `batch` at each named layer, detached from the model.

    Tokens where u or δ is all zero (padding, tokens after the target) contribute nothing
    to the gradient and are dropped, so a transformed gradient cannot revive them.
    """
    model = language_model.model
    weights = {f"{name}.weight": nethook.get_module(model, name).weight.detach().requires_grad_() for name in module_names}
    # The weights are passed as fresh leaves: gradients stop there, never reaching the model.
    with torch.enable_grad(), nethook.Trace(model, module_names, retain_input=True, retain_grad=True) as trace:
        loss = summed_edit_nll(language_model, batch, weights, lower)
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
