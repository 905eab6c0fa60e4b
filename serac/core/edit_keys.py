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
    return activations_of_modules_at(language_model, {module_name: read}, prompts, targets, positions, batch_size)[module_name]


@torch.no_grad()
def activations_of_modules_at(
    language_model: LanguageModel,
    reads: dict[str, str],
    prompts: Sequence[str],
    targets: Sequence[str],
    positions: Sequence[int],
    batch_size: int = 16,
) -> dict[str, torch.Tensor]:
    """`activations_at` for several modules in one forward pass: `reads` maps each module name to
    "input" or "output"; returns {module name: [n, dim]}. The pass stops after the last of them."""
    for read in reads.values():
        if read not in ("input", "output"):
            raise ValueError(f"read must be 'input' or 'output', got {read!r}")
    rows: dict[str, list[torch.Tensor]] = {name: [] for name in reads}
    model = language_model.model
    kinds = set(reads.values())
    for start in range(0, len(prompts), batch_size):
        batch = language_model.batch(list(prompts[start : start + batch_size]), list(targets[start : start + batch_size]))
        retain = {"retain_input": "input" in kinds, "retain_output": "output" in kinds}
        with nethook.Trace(model, list(reads), stop=True, **retain) as trace:  # the layers above are not needed
            language_model.target_logits(batch)
        index = torch.tensor(positions[start : start + batch_size])
        for name, read in reads.items():
            values = trace[name].input if read == "input" else trace[name].output
            rows[name].append(values[torch.arange(len(index), device=values.device), index.to(values.device)].float())
    return {name: torch.cat(chunks) for name, chunks in rows.items()}


def subject_positions(language_model: LanguageModel, prompts: Sequence[str], subject: str) -> list[int]:
    return [last_subject_token(language_model, prompt, subject) for prompt in prompts]


def edit_key(
    language_model: LanguageModel, module_name: str, prompts: Sequence[str], subject: str, target: str
) -> torch.Tensor:
    """k*: the mean input of `module_name` at the subject's last token over `prompts` (the prefixed prompts)."""
    positions = subject_positions(language_model, prompts, subject)
    return activations_at(language_model, module_name, prompts, [target] * len(prompts), positions).mean(dim=0)
