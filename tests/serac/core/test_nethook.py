"""The shared hooks utility: traced u and δ give the weight gradient, for Linear and GPT-2's Conv1D."""

import pytest
import torch
from transformers.pytorch_utils import Conv1D

from serac.core import nethook

PROMPTS = ["What is the capital of France?", "Who wrote Hamlet?"]
TARGETS = ["Paris", "William Shakespeare"]


@pytest.mark.parametrize(
    ("model_name", "module_name", "layer_type"),
    [("tiny-llama", "model.layers.1.mlp.down_proj", torch.nn.Linear), ("tiny-gpt2", "transformer.h.1.mlp.c_fc", Conv1D)],
)
def test_traced_factors_give_autograd_weight_gradient(tiny_lm, model_name, module_name, layer_type):
    lm = tiny_lm(model_name)
    module = nethook.get_module(lm.model, module_name)
    assert isinstance(module, layer_type)
    batch = lm.batch(PROMPTS, TARGETS)
    with nethook.Trace(lm.model, [module_name], retain_input=True, retain_output=True, retain_grad=True) as trace:
        lm.nll(batch).backward()
    record = trace[module_name]
    assert record.input.shape[:2] == record.output_grad.shape[:2] == batch["input_ids"].shape
    assert torch.allclose(nethook.weight_update(module, record.input, record.output_grad), module.weight.grad, atol=1e-6)


def test_linear_dims_follow_each_weight_layout():
    assert nethook.linear_dims(torch.nn.Linear(3, 5)) == (3, 5)
    assert nethook.linear_dims(Conv1D(5, 3)) == (3, 5)  # Conv1D(out, in) stores weight [in, out]
    assert nethook.weight_update(Conv1D(5, 3), torch.ones(2, 3), torch.ones(2, 5)).shape == (3, 5)
    with pytest.raises(TypeError, match="nn.Linear or transformers Conv1D"):
        nethook.linear_dims(torch.nn.Embedding(3, 5))
    with pytest.raises(ValueError, match="do not fit"):
        nethook.weight_update(torch.nn.Linear(3, 5), torch.ones(2, 5), torch.ones(2, 3))


def test_trace_records_block_hidden_states_and_can_replace_them(tiny_lm):
    lm = tiny_lm("tiny-llama")
    batch = lm.batch(PROMPTS, TARGETS)
    block = nethook.layer_stacks(lm.model)[0] + ".1"
    with torch.no_grad():
        hidden = lm.model(input_ids=batch["input_ids"], output_hidden_states=True).hidden_states
    hooks_before = sum(len(module._forward_hooks) for module in lm.model.modules())  # HF adds its own on first use
    with torch.no_grad(), nethook.Trace(lm.model, [block], retain_output=True) as trace:
        lm.model(input_ids=batch["input_ids"])
    assert torch.equal(trace[block].output, hidden[2])  # hidden[0] is the embeddings, hidden[i + 1] block i's output

    with torch.no_grad(), nethook.Trace(lm.model, [block], edit_output=lambda name, output: torch.zeros_like(output)):
        zeroed = lm.model(input_ids=batch["input_ids"]).logits
    with torch.no_grad():
        normal = lm.model(input_ids=batch["input_ids"]).logits
    assert not torch.allclose(zeroed, normal)
    assert sum(len(module._forward_hooks) for module in lm.model.modules()) == hooks_before  # removed on exit


def test_layer_stacks_find_decoder_and_encoder_decoder_blocks(tiny_lm):
    assert nethook.layer_stacks(tiny_lm("tiny-llama").model) == ["model.layers"]
    assert nethook.layer_stacks(tiny_lm("tiny-gpt2").model) == ["transformer.h"]
    assert nethook.layer_stacks(tiny_lm("tiny-t5").model) == ["encoder.block", "decoder.block"]


def test_clear_errors(tiny_lm):
    model = tiny_lm("tiny-llama").model
    with pytest.raises(LookupError, match="did you mean model.layers.1.mlp.up_proj"):
        nethook.get_module(model, "model.layers.1.mlp.upproj")
    with pytest.raises(LookupError, match="no parameter named"):
        nethook.get_parameter(model, "model.layers.1.mlp.up_proj.bias")
    with pytest.raises(TypeError, match="list of module names"):
        nethook.Trace(model, "model.layers.1")
    with pytest.raises(KeyError, match="not traced"):
        with nethook.Trace(model, ["model.layers.1"]) as trace:
            trace["model.layers.2"]
    with pytest.raises(RuntimeError, match="does not require grad"):
        with torch.no_grad(), nethook.Trace(model, ["model.layers.1.mlp.up_proj"], retain_grad=True):
            model(input_ids=torch.tensor([[5, 6, 7]]))
