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

import copy
import inspect
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from serac.core import nethook
from serac.core.language_model import IGNORE, LanguageModel, target_columns, target_token_logprobs


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
    forward = _forward_from_subject(language_model, batch, list(positions) + list(kl_positions))
    initial = initial.detach().to(language_model.device).float()
    delta = torch.zeros_like(initial, requires_grad=True)
    optimiser = torch.optim.Adam([delta], lr=settings.lr)
    limit = settings.clamp_factor * initial.norm()

    with frozen_weights(model):
        if kl_prompts:
            with torch.no_grad():
                logits, labels = forward(module_name, None)
                unedited = _first_target_logprobs(logits[rows:], labels[rows:])
        for _ in range(settings.steps):
            logits, labels = forward(module_name, initial + delta)
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


Forward = Callable[[str, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


def _forward_from_subject(language_model: LanguageModel, batch: dict[str, torch.Tensor], positions: Sequence[int]) -> Forward:
    """forward(module_name, z): (logits, labels) aligned as `LanguageModel.target_logits(...,
    target_columns_only=True)` gives them (only the columns that predict a target token), with the
    module's output at each row's subject token replaced by z (None: unedited).

    In a decoder-only model nothing before the subject token depends on z, so those tokens are run
    once and their keys and values cached; each optimisation step then runs only the subject token
    and what follows it (with 50 model-written prefixes before a short prompt, a few tokens of each
    row instead of all of them). An encoder-decoder reads the subject bidirectionally: it runs whole.
    """
    if language_model.is_encoder_decoder or max(positions) == 0:
        index = torch.tensor(list(positions), device=language_model.device)
        whole = lambda: language_model.target_logits(batch, target_columns_only=True)  # noqa: E731
        return lambda module_name, z: _traced(language_model, module_name, z, index, whole)

    context, rest = _split_at(batch, positions, language_model.tokenizer.pad_token_id)
    model = language_model.model
    # transformers 5 renamed `past_key_values` (argument and output) to `cache`.
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.no_grad():
        cache = model(**context, use_cache=True)[cache_name]
    attention_mask = torch.cat([context["attention_mask"], rest["attention_mask"]], dim=1)
    first_column = torch.zeros(len(positions), dtype=torch.long, device=language_model.device)

    labels = rest["labels"][:, 1:]  # position t predicts token t+1
    # Only the positions that predict a target token are projected on the vocabulary.
    columns = target_columns(labels)
    keep = {"logits_to_keep": columns} if language_model.takes_logits_to_keep else {}

    def run_rest() -> tuple[torch.Tensor, torch.Tensor]:
        # A copy per step: the forward appends the rest's keys and values to the cache it is given.
        output = model(
            input_ids=rest["input_ids"], attention_mask=attention_mask, position_ids=rest["position_ids"],
            use_cache=True, **{cache_name: copy.deepcopy(cache)}, **keep,
        )
        logits = output.logits if keep else output.logits[:, :-1][:, columns]
        return logits, labels[:, columns]

    return lambda module_name, z: _traced(language_model, module_name, z, first_column, run_rest)


def _traced(language_model: LanguageModel, module_name: str, z: torch.Tensor | None, index: torch.Tensor, run):
    if z is None:
        return run()
    every_row = torch.arange(len(index), device=index.device)

    def replace_at_subject(name: str, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.clone()
        hidden[every_row, index] = z.to(hidden.dtype)
        return hidden

    with nethook.Trace(language_model.model, [module_name], edit_output=replace_at_subject):
        return run()


def _split_at(batch: dict[str, torch.Tensor], positions: Sequence[int], pad_id: int) -> tuple[dict, dict]:
    """A right-padded teacher-forcing batch split at each row's subject token: (the tokens before it,
    left-padded so every row's context ends in the same column; the rest from the subject token on,
    right-padded, with its labels), each with the position ids the tokens had in the whole row."""
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    width_before, width_rest = max(positions), max(length - start for length, start in zip(lengths, positions))
    rows, device = len(positions), batch["input_ids"].device
    context = {
        "input_ids": torch.full((rows, width_before), pad_id, dtype=torch.long, device=device),
        "attention_mask": torch.zeros((rows, width_before), dtype=torch.long, device=device),
    }
    rest = {
        "input_ids": torch.full((rows, width_rest), pad_id, dtype=torch.long, device=device),
        "attention_mask": torch.zeros((rows, width_rest), dtype=torch.long, device=device),
        "labels": torch.full((rows, width_rest), IGNORE, dtype=torch.long, device=device),
    }
    for row, (length, start) in enumerate(zip(lengths, positions)):
        if start:
            context["input_ids"][row, -start:] = batch["input_ids"][row, :start]
            context["attention_mask"][row, -start:] = 1
        rest["input_ids"][row, : length - start] = batch["input_ids"][row, start:length]
        rest["attention_mask"][row, : length - start] = 1
        rest["labels"][row, : length - start] = batch["labels"][row, start:length]
    context["position_ids"] = (context["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)
    starts = torch.tensor(list(positions), device=device).unsqueeze(1)
    rest["position_ids"] = starts + torch.arange(width_rest, device=device).unsqueeze(0)
    return context, rest
