"""Choose the linear layers MEND edits, without knowing the architecture."""

import re

from torch import nn

from mend.mend.config import MENDConfig
from serac.core import nethook


def edited_modules(model: nn.Module, config: MENDConfig) -> list[str]:
    """`config.edit_modules` checked against the model, or else the default choice.

    The default: in each layer stack (a decoder's layers; an encoder-decoder's encoder and
    decoder blocks) the blocks `config.layers`, and in them the linear layers whose name,
    relative to the block, matches `config.module_pattern` (the MLP matrices by default).
    """
    names = config.edit_modules if config.edit_modules is not None else _default_modules(model, config)
    for name in names:
        module = nethook.get_module(model, name)
        if not isinstance(module, nethook.LINEAR_TYPES):
            raise TypeError(f"MEND edits linear layers (nn.Linear or Conv1D); {name!r} is a {type(module).__name__}")
    return list(names)


def _default_modules(model: nn.Module, config: MENDConfig) -> list[str]:
    stacks = nethook.layer_stacks(model)
    if not stacks:
        raise ValueError("the model has no layer stack (an nn.ModuleList of blocks); set MENDConfig.edit_modules")
    pattern = re.compile(config.module_pattern)
    names = []
    for stack_name in stacks:
        stack = nethook.get_module(model, stack_name)
        out_of_range = [index for index in config.layers if not -len(stack) <= index < len(stack)]
        if out_of_range:
            raise ValueError(f"MENDConfig.layers {out_of_range} out of range: {stack_name} has {len(stack)} blocks")
        for index in sorted({index % len(stack) for index in config.layers}):
            for relative, module in stack[index].named_modules():
                if isinstance(module, nethook.LINEAR_TYPES) and pattern.search(relative):
                    names.append(f"{stack_name}.{index}.{relative}")
    if not names:
        examples = ", ".join(f"{stacks[0]}.0.{name}" for name, m in nethook.get_module(model, stacks[0])[0].named_modules()
                             if isinstance(m, nethook.LINEAR_TYPES))
        raise ValueError(
            f"no linear layer matches MENDConfig.module_pattern={config.module_pattern!r} in blocks {config.layers}; "
            f"the model's block layers are: {examples}. Set module_pattern or edit_modules."
        )
    return names
