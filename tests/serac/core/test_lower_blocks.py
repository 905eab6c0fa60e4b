"""Replaying the blocks below the edited ones: the same logits and gradients as the whole model."""

import pytest
import torch

from serac.core import nethook
from serac.core.lower_blocks import LowerStateCache, first_edited_block, lower_block_states

PROMPTS = ["What is the capital of France?", "Who wrote Hamlet?"]
TARGETS = ["Paris", "William Shakespeare"]
TOP_MLP = {"tiny-llama": "model.layers.2.mlp.down_proj", "tiny-gpt2": "transformer.h.2.mlp.c_proj"}


def _edited(lm, name: str) -> dict[str, torch.Tensor]:
    weight = nethook.get_module(lm.model, name).weight
    delta = (0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))).requires_grad_()
    return {f"{name}.weight": weight + delta}, delta


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("target_columns_only", [False, True])
def test_replayed_lower_blocks_give_the_whole_models_logits_and_gradients(tiny_lm, model_name, target_columns_only):
    lm = tiny_lm(model_name)
    batch = lm.batch(PROMPTS, TARGETS)
    name = TOP_MLP[model_name]
    lower = lower_block_states(lm, batch, [name])
    assert lower is not None and lower.first_upper == 2

    results = []
    for states in (None, lower):
        parameters, delta = _edited(lm, name)
        logits, labels = lm.target_logits(batch, parameters, lower=states, target_columns_only=target_columns_only)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        results.append((logits, labels, torch.autograd.grad(loss, delta)[0]))
    (full_logits, full_labels, full_grad), (replay_logits, replay_labels, replay_grad) = results
    assert torch.equal(full_labels, replay_labels)
    assert torch.allclose(full_logits, replay_logits, atol=1e-5)
    assert torch.allclose(full_grad, replay_grad, atol=1e-6)
    assert full_grad.abs().sum() > 0


def test_target_columns_keep_every_target_and_only_the_columns_that_hold_one(tiny_lm):
    lm = tiny_lm("tiny-llama")
    batch = lm.batch(PROMPTS, TARGETS)
    with torch.no_grad():
        logits, labels = lm.target_logits(batch)
        kept_logits, kept_labels = lm.target_logits(batch, target_columns_only=True)
    targets = labels != -100
    assert kept_labels.shape[1] == int(targets.any(0).sum()) < labels.shape[1]
    assert torch.equal(kept_labels[kept_labels != -100], labels[targets])
    assert torch.allclose(kept_logits[kept_labels != -100], logits[targets], atol=1e-5)


def test_the_lower_blocks_do_not_run_again_and_come_back_after_the_call(tiny_lm):
    lm = tiny_lm("tiny-llama")
    batch = lm.batch(PROMPTS, TARGETS)
    blocks = list(lm.model.model.layers)
    lower = lower_block_states(lm, batch, [TOP_MLP["tiny-llama"]])
    calls = []
    handles = [block.register_forward_hook(lambda *_, i=i: calls.append(i)) for i, block in enumerate(blocks)]
    with torch.no_grad():
        lm.target_logits(batch, lower=lower)
        assert calls == [2]
        with pytest.raises(RuntimeError, match="inside"), lower.replayed(lm.model, batch["input_ids"]):
            raise RuntimeError("inside")
        calls.clear()
        lm.target_logits(batch)
    assert calls == [0, 1, 2]
    assert list(lm.model.model.layers) == blocks
    for handle in handles:
        handle.remove()


def test_states_of_one_batch_refuse_another(tiny_lm):
    lm = tiny_lm("tiny-llama")
    lower = lower_block_states(lm, lm.batch(PROMPTS, TARGETS), [TOP_MLP["tiny-llama"]])
    with pytest.raises(ValueError, match="another batch"):
        lm.target_logits(lm.batch(PROMPTS[:1], TARGETS[:1]), lower=lower)


def test_no_states_where_replaying_would_not_be_exact_or_save_nothing(tiny_lm):
    t5 = tiny_lm("tiny-t5")
    assert lower_block_states(t5, t5.batch(PROMPTS, TARGETS), ["decoder.block.1.layer.2.DenseReluDense.wo"]) is None
    llama = tiny_lm("tiny-llama")
    batch = llama.batch(PROMPTS, TARGETS)
    assert lower_block_states(llama, batch, ["model.layers.0.mlp.down_proj", TOP_MLP["tiny-llama"]]) is None
    assert first_edited_block(llama.model, ["lm_head"]) is None
    assert first_edited_block(llama.model, ["model.layers.2.mlp.up_proj", "model.layers.1.mlp.up_proj"]) == ("model.layers", 1)


def test_kept_rows_make_the_same_states_in_any_batch_and_stop_at_the_budget(tiny_lm):
    lm = tiny_lm("tiny-llama")
    names = [TOP_MLP["tiny-llama"]]
    cache = LowerStateCache(lm, names, max_bytes=1 << 20)
    pair = lm.batch(PROMPTS, TARGETS)
    assert cache.states(pair).output.shape == lower_block_states(lm, pair, names).output.shape
    assert len(cache) == 2
    # The second row alone, and beside a new row, comes from the cache: the same logits as the whole model.
    mixed = lm.batch([PROMPTS[1], "Where is the Louvre?"], [TARGETS[1], "Paris, France"])
    with torch.no_grad():
        full_logits, labels = lm.target_logits(mixed)
        kept_logits, _ = lm.target_logits(mixed, lower=cache.states(mixed))
    targets = labels != -100
    assert torch.allclose(full_logits[targets], kept_logits[targets], atol=1e-5)
    assert len(cache) == 3

    empty = LowerStateCache(lm, names, max_bytes=0)
    with torch.no_grad():
        replayed, _ = lm.target_logits(pair, lower=empty.states(pair))
        whole, labels = lm.target_logits(pair)
    assert len(empty) == 0 and empty.bytes == 0
    assert torch.allclose(replayed[labels != -100], whole[labels != -100], atol=1e-5)
    assert LowerStateCache(tiny_lm("tiny-t5"), ["decoder.block.1.layer.2.DenseReluDense.wo"], 1 << 20).states(pair) is None
