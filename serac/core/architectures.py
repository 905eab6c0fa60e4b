"""Which module of a transformer block is its MLP output projection: a lookup table by module name.

ROME and MEMIT rewrite that matrix, FT trains it by default. The table covers Llama, Mistral and
Qwen (`mlp.down_proj`), GPT-2 (`mlp.c_proj`, a transposed Conv1D), T5 (`DenseReluDense.wo`), GPT-J
(`mlp.fc_out`), OPT (`fc2`) and Falcon/BLOOM (`mlp.dense_4h_to_h`). An architecture missing here is
handled by naming its module in the method's config, never by a branch on the model's name.
"""

import re

from torch import nn

from serac.core import nethook

MLP_OUTPUT_MODULES = ("mlp.down_proj", "mlp.c_proj", "DenseReluDense.wo", "mlp.fc_out", "fc2", "mlp.dense_4h_to_h")
MLP_OUTPUT_PATTERN = r"(^|\.)(" + "|".join(re.escape(name) for name in MLP_OUTPUT_MODULES) + r")\.weight$"


def block_name(model: nn.Module, layer: int, stack: int = 0) -> str:
    """Dotted name of block `layer` (negative counts from the end) of the model's `stack`-th layer stack."""
    stacks = nethook.layer_stacks(model)
    if not stacks:
        raise LookupError("the model has no layer stack (no nn.ModuleList of identical blocks)")
    if not -len(stacks) <= stack < len(stacks):
        raise IndexError(f"the model has {len(stacks)} layer stack(s) ({', '.join(stacks)}); stack {stack} is out of range")
    blocks = nethook.get_module(model, stacks[stack])
    if not -len(blocks) <= layer < len(blocks):
        raise IndexError(f"layer {layer} is out of range: {stacks[stack]} has {len(blocks)} blocks")
    return f"{stacks[stack]}.{layer % len(blocks)}"


def mlp_output_name(model: nn.Module, layer: int, stack: int = 0, module_names: tuple[str, ...] = MLP_OUTPUT_MODULES) -> str:
    """Dotted name of the MLP output projection of block `layer` (found through `module_names`)."""
    block = block_name(model, layer, stack)
    inside = [(name, module) for name, module in nethook.get_module(model, block).named_modules() if name]
    for suffix in module_names:
        for name, module in inside:  # T5 nests its MLP: layer.1.DenseReluDense.wo
            if (name == suffix or name.endswith("." + suffix)) and isinstance(module, nethook.LINEAR_TYPES):
                return f"{block}.{name}"
    inside = [name for name, _ in inside]
    raise LookupError(
        f"no MLP output projection named like any of {module_names} in {block}; its modules are {inside[:12]}; "
        "name it in the config (mlp_output_modules)"
    )
