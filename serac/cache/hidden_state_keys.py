"""The cache's keys: a prompt's last-layer hidden states, averaged over its tokens.

A decoder-only model is keyed by its last layer; an encoder-decoder model by its
encoder's last layer, the part of the model that reads the prompt.
"""

import hashlib

import torch

from serac.core.language_model import LanguageModel


@torch.no_grad()
def prompt_keys(language_model: LanguageModel, prompts: list[str], batch_size: int) -> torch.Tensor:
    """[len(prompts), hidden size] float32 keys, on the CPU."""
    keys = []
    for start in range(0, len(prompts), batch_size):
        # Right padding keeps every prompt's positions starting at 0, so a key does not depend
        # on the other prompts of its batch; an over-long prompt keeps its end, as when scored.
        encoded = language_model.encode_prompts(prompts[start : start + batch_size], padding_side="right")
        hidden = _last_hidden_states(language_model, encoded)
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        keys.append(((hidden * mask).sum(dim=1) / mask.sum(dim=1)).float().cpu())
    return torch.cat(keys) if keys else torch.empty(0, hidden_size(language_model))


def _last_hidden_states(language_model: LanguageModel, encoded) -> torch.Tensor:
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    model = language_model.model
    # `base_model` is the transformer without its LM head, so no vocabulary-sized logits are computed.
    body = model.get_encoder() if language_model.is_encoder_decoder else model.base_model
    return body(**inputs).last_hidden_state


def hidden_size(language_model: LanguageModel) -> int:
    return language_model.model.config.hidden_size


def key_space_name(language_model: LanguageModel, model_name: str) -> str:
    """Names the space the keys live in: the model, its prompt format and a digest of its weights.

    A memory records it, so a memory built with another model (or the same name with other
    weights) is refused instead of being searched with keys it cannot be compared to.
    """
    digest = hashlib.sha256()
    for name, parameter in language_model.model.named_parameters():
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{model_name}[{language_model.prompt_format}]@{digest.hexdigest()[:16]}"
