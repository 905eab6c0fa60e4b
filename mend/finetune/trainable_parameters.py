"""Choose the weights fine-tuning trains, by parameter-name pattern and layer index.

Layers are found without knowing the architecture (`nethook.layer_stacks`): Llama's
`model.layers`, GPT-2's `transformer.h`, T5's `encoder.block` and `decoder.block`; a
parameter's layer is its index in its stack.
"""

import re

import torch

from mend.finetune.config import ALL_PARAMETERS
from serac.core import nethook


def select_trainable_parameters(
    model: torch.nn.Module, parameter_pattern: str, layers: list[int] | None
) -> dict[str, torch.nn.Parameter]:
    """The parameters matching `parameter_pattern` ("all" for every one) in `layers` of each stack (None: anywhere)."""
    pattern = None if parameter_pattern == ALL_PARAMETERS else re.compile(parameter_pattern)
    allowed_prefixes = None if layers is None else _layer_prefixes(model, layers)
    chosen = {}
    for name, parameter in model.named_parameters():
        if pattern is not None and not pattern.search(name):
            continue
        if allowed_prefixes is not None and not name.startswith(allowed_prefixes):
            continue
        chosen[name] = parameter
    if not chosen:
        examples = ", ".join(name for name, _ in list(model.named_parameters())[:6])
        raise ValueError(
            f"no parameter matches parameter_pattern={parameter_pattern!r} in layers={layers}; "
            f"parameter names look like: {examples}, ..."
        )
    return chosen


def _layer_prefixes(model: torch.nn.Module, layers: list[int]) -> tuple[str, ...]:
    """"<stack>.<index>." for each chosen layer of every layer stack."""
    stacks = nethook.layer_stacks(model)
    if not stacks:
        raise ValueError(
            "config.layers was given but the model has no layer stack (an nn.ModuleList of blocks); set layers to None"
        )
    prefixes = []
    for stack_name in stacks:
        depth = len(nethook.get_module(model, stack_name))
        out_of_range = [index for index in layers if not -depth <= index < depth]
        if out_of_range:
            raise ValueError(f"config.layers {out_of_range} out of range: {stack_name} has {depth} layers")
        prefixes.extend(f"{stack_name}.{index % depth}." for index in sorted(set(layers)))
    return tuple(prefixes)
