"""Activations at the subject token: several modules read in one pass are the single reads."""

import pytest
import torch

from serac.core.architectures import block_name, mlp_output_name
from serac.core.edit_keys import activations_at, activations_of_modules_at, subject_positions

PROMPTS = ["The mother tongue of Danielle Darrieux is", "A long day at work. Danielle Darrieux speaks"]


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-gpt2"])
def test_reading_a_layers_input_and_a_higher_blocks_output_in_one_pass_gives_the_single_reads(tiny_lm, model_name):
    lm = tiny_lm(model_name)
    key_module = mlp_output_name(lm.model, 0, 0, ("mlp.down_proj", "mlp.c_proj"))
    top = block_name(lm.model, 1, 0)
    positions = subject_positions(lm, PROMPTS, "Danielle Darrieux")
    targets = ["French"] * len(PROMPTS)

    both = activations_of_modules_at(lm, {key_module: "input", top: "output"}, PROMPTS, targets, positions)

    assert torch.equal(both[key_module], activations_at(lm, key_module, PROMPTS, targets, positions, read="input"))
    assert torch.equal(both[top], activations_at(lm, top, PROMPTS, targets, positions, read="output"))
    assert both[key_module].shape[0] == len(PROMPTS) and not torch.equal(both[key_module][0], both[key_module][1])


def test_an_unknown_read_is_refused(tiny_lm):
    lm = tiny_lm("tiny-llama")
    with pytest.raises(ValueError, match="read must be 'input' or 'output'"):
        activations_of_modules_at(lm, {block_name(lm.model, 0, 0): "gradient"}, PROMPTS, ["x", "x"], [1, 1])
