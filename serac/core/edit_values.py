"""v* / z: the output vector at the subject's last token that makes the model say the new object.

ROME (eq. 4) and MEMIT (eq. 16) find it the same way: the output of one module (ROME: the
edited MLP output matrix; MEMIT: the block at the top of the edited range) at the subject's
last token is replaced by z in every prefixed prompt, and z minimises

    mean over prompts of the new object's mean token NLL
    + kl_weight · KL(edited ‖ unedited) of the next token after "{subject} is a"-style prompts
    + weight_decay · ‖z − z₀‖² / ‖z₀‖²

with Adam from z₀ (the mean unedited output there); after every step ‖z − z₀‖ is clamped to
`clamp_factor` · ‖z₀‖. The optimisation stops early once the NLL is below `early_stop_nll`.
The authors' code adds δ = z − z₀ to each prompt's own output instead of replacing it, and
penalises ‖δ‖/‖z₀‖²; here the output is replaced as the papers write it and δ's squared norm is
penalised, a plain L2 (weight-decay) term.
"""

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from serac.core import nethook
from serac.core.language_model import IGNORE, LanguageModel, target_token_logprobs


@dataclass(frozen=True)
class ValueSettings:
    """The value optimisation's settings; their defaults and documentation live in `KeyValueConfig`."""

    steps: int
    lr: float
    weight_decay: float
    clamp_factor: float
    kl_weight: float
    early_stop_nll: float


@contextmanager
def frozen_weights(model: torch.nn.Module):
    """No gradient for any weight inside the block (only z is optimised); the flags are restored after."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def _first_target_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token log-probs at each row's first target position: [rows, vocab]."""
    first = (labels != IGNORE).float().argmax(dim=1)
    return torch.log_softmax(logits[torch.arange(len(first)), first].float(), dim=-1)


def optimise_value(
    language_model: LanguageModel,
    module_name: str,
    prompts: Sequence[str],
    positions: Sequence[int],
    target: str,
    kl_prompts: Sequence[str],
    kl_positions: Sequence[int],
    initial: torch.Tensor,
    settings: ValueSettings,
) -> torch.Tensor:
    """z (a detached [dim] tensor) for one edit; `positions` are the subject's last tokens of the prompts."""
    model = language_model.model
    rows = len(prompts)
    batch = language_model.batch(list(prompts) + list(kl_prompts), [target] * (rows + len(kl_prompts)))
    index = torch.tensor(list(positions) + list(kl_positions), device=language_model.device)
    every_row = torch.arange(len(index), device=language_model.device)
    initial = initial.detach().to(language_model.device).float()
    delta = torch.zeros_like(initial, requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=settings.lr)
    limit = settings.clamp_factor * initial.norm()

    def replace_at_subject(name: str, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.clone()
        hidden[every_row, index] = (initial + delta).to(hidden.dtype)
        return hidden

    with frozen_weights(model):
        if kl_prompts:
            with torch.no_grad():
                logits, labels = language_model.target_logits(batch)
                unedited = _first_target_logprobs(logits[rows:], labels[rows:])
        for _ in range(settings.steps):
            with nethook.Trace(model, [module_name], edit_output=replace_at_subject):
                logits, labels = language_model.target_logits(batch)
            token_logprobs, mask = target_token_logprobs(logits[:rows], labels[:rows])
            nll = -((token_logprobs * mask).sum(dim=1) / mask.sum(dim=1)).mean()
            loss = nll + settings.weight_decay * delta.pow(2).sum() / initial.pow(2).sum()
            if kl_prompts:
                edited = _first_target_logprobs(logits[rows:], labels[rows:])
                kl = (edited.exp() * (edited - unedited)).sum(dim=-1).mean()
                loss = loss + settings.kl_weight * kl
            if nll.item() < settings.early_stop_nll:
                break
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                norm = delta.norm()
                if norm > limit:
                    delta.mul_(limit / norm)
    return (initial + delta).detach()
