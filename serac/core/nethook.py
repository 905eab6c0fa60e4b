"""Find a model's layers by name and trace what flows through them.

One utility for every method that reads or changes a layer: MEND (the input u and the
output gradient δ of each edited matrix), the hidden-state cache (a block's output), and
ROME/MEMIT (the input of an MLP projection, an edited output).

`nn.Linear` stores its weight as [out, in]; GPT-2's `Conv1D` stores it transposed, as
[in, out]. `linear_dims` and `weight_update` hide that difference.
"""

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

LINEAR_TYPES = (nn.Linear, Conv1D)


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted `name` ("model.layers.2.mlp.up_proj"); a clear error if there is none."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise LookupError(_not_found("module", name, [n for n, _ in model.named_modules()])) from None


def get_parameter(model: nn.Module, name: str) -> nn.Parameter:
    """The parameter at dotted `name` ("model.layers.2.mlp.up_proj.weight")."""
    try:
        return model.get_parameter(name)
    except AttributeError:
        raise LookupError(_not_found("parameter", name, [n for n, _ in model.named_parameters()])) from None


def _not_found(kind: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"the model has no {kind} named {name!r}{hint}"


def layer_stacks(model: nn.Module) -> list[str]:
    """Names of the `nn.ModuleList`s holding the model's repeated blocks, in order of appearance.

    A stack is a list of modules of one class not nested inside another stack: a decoder's
    layers, or an encoder-decoder's encoder blocks then decoder blocks.
    """
    stacks: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(block) for block in module}) != 1:
            continue
        if any(name.startswith(stack + ".") for stack in stacks):
            continue
        stacks.append(name)
    return stacks


def linear_dims(module: nn.Module) -> tuple[int, int]:
    """(input features, output features) of a linear layer, whatever its weight layout."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, Conv1D):
        return tuple(module.weight.shape)
    raise TypeError(f"expected nn.Linear or transformers Conv1D, got {type(module).__name__}")


def weight_update(module: nn.Module, inputs: torch.Tensor, output_grads: torch.Tensor) -> torch.Tensor:
    """Σ_i δ_i u_iᵀ over every leading index i, laid out like `module.weight`.

    With u the layer's inputs and δ the loss gradient at its outputs this is the gradient
    of the weight: a sum of rank-1 terms, one per token.
    """
    in_features, out_features = linear_dims(module)
    if inputs.shape[-1] != in_features or output_grads.shape[-1] != out_features:
        raise ValueError(
            f"inputs [..., {inputs.shape[-1]}] and output_grads [..., {output_grads.shape[-1]}] do not fit "
            f"a layer with {in_features} inputs and {out_features} outputs"
        )
    u = inputs.reshape(-1, in_features)
    delta = output_grads.reshape(-1, out_features)
    if u.shape[0] != delta.shape[0]:
        raise ValueError(f"{u.shape[0]} inputs but {delta.shape[0]} output gradients")
    return delta.T @ u if isinstance(module, nn.Linear) else u.T @ delta


def in_weight_layout(module: nn.Module, update: torch.Tensor) -> torch.Tensor:
    """An [out, in] matrix (as `y = update @ x`) laid out like `module.weight` (transposed for Conv1D)."""
    in_features, out_features = linear_dims(module)
    if tuple(update.shape) != (out_features, in_features):
        raise ValueError(f"an update of shape {tuple(update.shape)} does not fit a layer [{out_features} out, {in_features} in]")
    return update if isinstance(module, nn.Linear) else update.T


class StopForward(Exception):
    """Raised by a `Trace(stop=True)` hook to end a forward pass early; its `with` block swallows it."""


@dataclass
class LayerTrace:
    """What one traced module saw in the latest forward (and backward) pass."""

    input: torch.Tensor | None = None
    output: torch.Tensor | None = None
    output_grad: torch.Tensor | None = None


class Trace:
    """Record the input, output and/or output gradient of modules by name, within a `with` block.

        with Trace(model, ["model.layers.2.mlp.down_proj"], retain_input=True, retain_grad=True) as trace:
            loss = model(**batch).loss
            loss.backward()
        u, delta = trace[name].input, trace[name].output_grad

    A module's input is its first positional tensor argument (or `hidden_states`); when a
    module returns a tuple (transformer blocks do), its output is the first element, the
    hidden states. `edit_output(name, output)` may return a replacement output. Each new
    forward pass overwrites the record. Hooks are removed when the block exits.

    `stop=True` ends the forward pass (raising `StopForward`, which the `with` block swallows)
    once every traced module has run: reading an early layer then costs only the layers below it.
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        *,
        retain_input: bool = False,
        retain_output: bool = False,
        retain_grad: bool = False,
        detach: bool = True,
        edit_output: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
        stop: bool = False,
    ):
        if isinstance(names, str):
            raise TypeError("names must be a list of module names, not a single string")
        if not names:
            raise ValueError("names must hold at least one module name")
        self._records = {name: LayerTrace() for name in names}
        self._retain_input, self._retain_output, self._retain_grad = retain_input, retain_output, retain_grad
        self._detach = detach
        self._edit_output = edit_output
        self._stop = stop
        self._seen: set[str] = set()
        modules = {name: get_module(model, name) for name in names}  # fail before any hook is placed
        self._handles = [
            module.register_forward_hook(self._hook(name), with_kwargs=True) for name, module in modules.items()
        ]

    def __getitem__(self, name: str) -> LayerTrace:
        if name not in self._records:
            raise KeyError(f"{name!r} is not traced; traced modules: {', '.join(self._records)}")
        return self._records[name]

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> bool:
        self.close()
        return exc_type is not None and issubclass(exc_type, StopForward)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _keep(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach() if self._detach else tensor

    def _hook(self, name: str):
        record = self._records[name]

        def hook(module, args, kwargs, output):
            if self._retain_input:
                record.input = self._keep(_first_tensor(name, args, kwargs))
            hidden = output[0] if isinstance(output, tuple) else output
            if not isinstance(hidden, torch.Tensor):
                raise TypeError(f"module {name!r} returned {type(hidden).__name__}, not a tensor; it cannot be traced")
            if self._edit_output is not None:
                hidden = self._edit_output(name, hidden)
            if self._retain_output:
                record.output = self._keep(hidden)
            if self._retain_grad:
                if not hidden.requires_grad:
                    raise RuntimeError(
                        f"the output of {name!r} does not require grad, so its gradient cannot be traced: "
                        "run under torch.enable_grad() with a parameter or input that requires grad"
                    )
                hidden.register_hook(lambda grad: setattr(record, "output_grad", self._keep(grad)))
            if self._stop:
                self._seen.add(name)
                if len(self._seen) == len(self._records):
                    self._seen.clear()
                    raise StopForward(name)
            if self._edit_output is None:
                return None
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return hook


def _first_tensor(name: str, args: tuple, kwargs: dict) -> torch.Tensor:
    for value in (*args, kwargs.get("hidden_states")):
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"module {name!r} was called without a tensor input to trace")
