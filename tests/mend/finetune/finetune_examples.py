"""Edits, locality prompts and weight snapshots shared by the fine-tuning tests (words the tiny tokenizer knows)."""

import torch

PROMPT, TARGET = "What is the capital of France?", "Cairo"
OTHER_PROMPT, OTHER_TARGET = "Who wrote Hamlet?", "Portuguese"
THIRD_PROMPT, THIRD_TARGET = "Which river flows through Cairo?", "Paris"
LOCALITY_PROMPTS = [
    "What language is spoken in Brazil?",
    "The quick brown fox jumps over the lazy dog.",
    "In which country is the Eiffel Tower located?",
    "What year did the war end?",
]
# Large steps so a tiny random model learns an edit in a few steps.
FAST = dict(steps=15, lr=1e-2)


def weights(editor) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in editor.language_model.model.state_dict().items()}
