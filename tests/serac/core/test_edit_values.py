"""v*: the cached forward from the subject token on is the whole forward, and z makes the target likelier."""

import pytest
import torch

from serac.core.architectures import mlp_output_name
from serac.core.edit_values import ValueSettings, _forward_from_subject, _traced, optimise_value
from serac.core.language_model import target_token_logprobs
from serac.core.subject_tokens import last_subject_token

SUBJECT = "Danielle Darrieux"
PROMPTS = [
    "The mother tongue of Danielle Darrieux is",
    "A long day of work at the office. The mother tongue of Danielle Darrieux is",
    "Danielle Darrieux is",
]


def _setup(lm):
    name = mlp_output_name(lm.model, 1, 0, ("mlp.down_proj", "mlp.c_proj"))
    positions = [last_subject_token(lm, prompt, SUBJECT) for prompt in PROMPTS]
    batch = lm.batch(PROMPTS, ["French speaking"] * len(PROMPTS))
    return name, positions, batch


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-gpt2"])
def test_running_from_the_subject_token_on_a_cache_gives_the_whole_forwards_losses_and_gradients(tiny_lm, model_name):
    lm = tiny_lm(model_name)
    name, positions, batch = _setup(lm)
    assert min(positions) > 0  # so the cached path is the one taken
    z = torch.randn(lm.model.config.hidden_size)

    def nll_and_gradient(forward):
        delta = torch.zeros_like(z, requires_grad=True)
        logits, labels = forward(name, z + delta)
        logprobs, mask = target_token_logprobs(logits, labels)
        per_row = -(logprobs * mask).sum(dim=1) / mask.sum(dim=1)
        per_row.mean().backward()
        return per_row.detach(), delta.grad

    cached = _forward_from_subject(lm, batch, positions)

    def whole_at_subject(module_name, value):  # every token of every row, as before the cache
        return _traced(lm, module_name, value, torch.tensor(positions), lambda: lm.target_logits(batch))

    nll_cached, gradient_cached = nll_and_gradient(cached)
    nll_whole, gradient_whole = nll_and_gradient(whole_at_subject)
    assert torch.allclose(nll_cached, nll_whole, atol=1e-4), (nll_cached, nll_whole)
    assert torch.allclose(gradient_cached, gradient_whole, atol=1e-5)
    # unedited (z None): the model's own loss on the batch
    logits, labels = cached(name, None)
    logprobs, mask = target_token_logprobs(logits, labels)
    assert torch.allclose(-(logprobs * mask).sum() / mask.sum(), lm.nll(batch), atol=1e-4)


def test_the_optimised_value_makes_the_target_likelier(tiny_lm):
    lm = tiny_lm("tiny-llama")
    name, positions, batch = _setup(lm)
    settings = ValueSettings(steps=15, lr=0.05, weight_decay=0.0, clamp_factor=1e4, kl_weight=0.0, early_stop_nll=1e-3)
    forward = _forward_from_subject(lm, batch, positions)
    with torch.no_grad():
        initial = torch.randn(lm.model.config.hidden_size, generator=torch.Generator().manual_seed(0))
        before = -target_token_logprobs(*forward(name, initial))[0].sum().item()
    z = optimise_value(lm, name, PROMPTS, positions, "French speaking", [], [], initial, settings)
    with torch.no_grad():
        after = -target_token_logprobs(*forward(name, z))[0].sum().item()
    assert after < before - 0.1, (before, after)
