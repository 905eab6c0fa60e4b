"""Activations at the subject's last token, and the key k* of an edit: their mean over prefixed prompts.

k* (ROME eq. 3, MEMIT's k_i) is the input of the edited MLP output matrix at the last subject
token, averaged over the bare prompt and its model-written prefixes (`context_prefixes`).
`activations_at` also reads a block's output there (MEMIT's h_i^L).
"""

from collections.abc import Sequence

import torch

from serac.core import nethook
from serac.core.language_model import LanguageModel
from serac.core.subject_tokens import last_subject_token


@torch.no_grad()
def activations_at(
    language_model: LanguageModel,
    module_name: str,
    prompts: Sequence[str],
    targets: Sequence[str],
    positions: Sequence[int],
    read: str = "input",
    batch_size: int = 16,
) -> torch.Tensor:
    """The input (`read="input"`) or output of `module_name` at token `positions[i]` of each prompt: [n, dim].

    The targets are appended as in `LanguageModel.batch`; they follow the read positions, so a
    causal model's activations there do not depend on them (an encoder-decoder reads its encoder).
    """
    if read not in ("input", "output"):
        raise ValueError(f"read must be 'input' or 'output', got {read!r}")
    rows = []
    model = language_model.model
    for start in range(0, len(prompts), batch_size):
        batch = language_model.batch(list(prompts[start : start + batch_size]), list(targets[start : start + batch_size]))
        retain = {"retain_input": read == "input", "retain_output": read == "output"}
        with nethook.Trace(model, [module_name], stop=True, **retain) as trace:  # the layers above are not needed
            language_model.target_logits(batch)
        values = trace[module_name].input if read == "input" else trace[module_name].output
        index = torch.tensor(positions[start : start + batch_size], device=values.device)
        rows.append(values[torch.arange(len(index), device=values.device), index].float())
    return torch.cat(rows)


def subject_positions(language_model: LanguageModel, prompts: Sequence[str], subject: str) -> list[int]:
    return [last_subject_token(language_model, prompt, subject) for prompt in prompts]


def edit_key(
    language_model: LanguageModel, module_name: str, prompts: Sequence[str], subject: str, target: str
) -> torch.Tensor:
    """k*: the mean input of `module_name` at the subject's last token over `prompts` (the prefixed prompts)."""
    positions = subject_positions(language_model, prompts, subject)
    return activations_at(language_model, module_name, prompts, [target] * len(prompts), positions).mean(dim=0)
