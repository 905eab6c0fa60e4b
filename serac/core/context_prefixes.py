"""Short texts the model writes itself, put before an edit's prompt so the edit holds in context.

ROME and MEMIT average the key k* over such prefixed prompts and optimise the value over them:
a key read from the bare prompt alone would fit that one sentence. The prefixes are sampled
(top-k) from the model, starting from its BOS (else EOS) token, under a fixed seed so the same
model always gets the same prefixes and an edit replayed by `remove_edit` is the same edit.
"""

import torch

from serac.core.language_model import LanguageModel

SEPARATOR = ". "


@torch.no_grad()
def generate_prefixes(language_model: LanguageModel, count: int, length: int, seed: int = 0, top_k: int = 5) -> list[str]:
    """`count` prefixes of `length` new tokens each (empty prefixes are dropped; may return fewer)."""
    if count == 0:
        return []
    tokenizer, model = language_model.tokenizer, language_model.model
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if language_model.is_encoder_decoder or start is None:
        # An encoder-decoder has no left context to write; neither has a model without a start token.
        raise ValueError("model-written prefixes need a decoder-only model with a BOS or EOS token; set num_prefixes=0")
    inputs = torch.full((count, 1), start, dtype=torch.long, device=language_model.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        output = model.generate(
            inputs, attention_mask=torch.ones_like(inputs), do_sample=True, top_k=top_k, max_new_tokens=length,
            min_new_tokens=length, pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start,
        )
    texts = tokenizer.batch_decode(output[:, 1:], skip_special_tokens=True)
    cleaned = [" ".join(text.replace("{", " ").replace("}", " ").split()) for text in texts]
    return [text for text in cleaned if text]


def prefixed_prompts(prompt: str, prefixes: list[str]) -> list[str]:
    """The bare prompt first, then the prompt after each prefix."""
    return [prompt] + [prefix + SEPARATOR + prompt for prefix in prefixes]
