"""Run the blocks below the edited ones once per batch, and replay their output afterwards.

A weight editor whose changes all sit in the top blocks of a decoder-only model (MEND edits the
MLP matrices of the last three of SmolLM2's 30 blocks) runs each batch through the model
several times with different weights: the edit itself, then the edited model on the rephrases
and on the locality inputs, before and after. What the blocks below the lowest edited one
compute does not depend on those weights, so `lower_block_states` runs them once, without a
gradient (nothing there is trained), and `LanguageModel.target_logits(..., lower=...)` then runs
only the blocks from the lowest edited one up: every block below it is swapped, for that call,
for a stand-in that returns the recorded output of the block just under the edited ones. The
upper blocks see the same inputs as in a full forward, so the logits are the same.
`LowerStateCache` keeps each row's states by its tokens across batches (MEND's training edits and
validation records come back every epoch and every validation), within a memory budget.

Encoder-decoder models (T5's first block computes a position bias the blocks above it reuse, and
the decoder reads the encoder) and edits in a model's first block get no states: the model runs
whole.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from serac.core import nethook


class _RecordedOutput(nn.Module):
    """A block that returns what the real block returned for the same batch, whatever it is given."""

    def __init__(self, output: object):
        super().__init__()
        self.recorded = output

    def forward(self, *args, **kwargs) -> object:
        return self.recorded


@dataclass(frozen=True)
class LowerBlockStates:
    """The output of block `first_upper - 1` of layer stack `stack` for the batch `input_ids`."""

    stack: str
    first_upper: int
    output: object
    input_ids: torch.Tensor

    @contextmanager
    def replayed(self, model: nn.Module, input_ids: torch.Tensor) -> Iterator[None]:
        """Within the block, a forward of `model` on `input_ids` runs only the blocks from `first_upper` on."""
        if input_ids.shape != self.input_ids.shape or not torch.equal(input_ids, self.input_ids):
            raise ValueError("these lower-block states were computed for another batch")
        blocks = nethook.get_module(model, self.stack)
        originals = list(blocks[: self.first_upper])
        stand_in = _RecordedOutput(self.output)
        try:
            for index in range(self.first_upper):
                blocks[index] = stand_in
            yield
        finally:
            for index, block in enumerate(originals):
                blocks[index] = block


def first_edited_block(model: nn.Module, module_names: Sequence[str]) -> tuple[str, int] | None:
    """(layer stack, index of its lowest block holding one of `module_names` (modules or their
    parameters)), or None when one is outside the blocks of a single stack (then what is below it
    cannot be replayed safely)."""
    stacks = nethook.layer_stacks(model)
    if len(stacks) != 1:
        return None
    stack = stacks[0]
    indices = []
    for name in module_names:
        if not name.startswith(stack + "."):
            return None
        indices.append(int(name[len(stack) + 1 :].split(".")[0]))
    return (stack, min(indices)) if indices else None


def replayable_block(language_model, module_names: Sequence[str]) -> tuple[str, int] | None:
    """`first_edited_block`, where replaying the blocks below it is exact and saves something; else None."""
    if language_model.is_encoder_decoder:
        return None
    first = first_edited_block(language_model.model, module_names)
    return first if first is not None and first[1] > 0 else None


@torch.no_grad()
def lower_block_states(language_model, batch: dict[str, torch.Tensor], module_names: Sequence[str]) -> LowerBlockStates | None:
    """Run `batch` through the blocks below the lowest of `module_names` (and no further); None where
    replaying them would not be exact or would save nothing (see the module's docstring)."""
    first = replayable_block(language_model, module_names)
    if first is None:
        return None
    stack, first_upper = first
    recorded = []

    def record_and_stop(module, args, output):
        recorded.append(output)
        raise nethook.StopForward(stack)

    handle = nethook.get_module(language_model.model, stack)[first_upper - 1].register_forward_hook(record_and_stop)
    try:
        language_model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    except nethook.StopForward:
        pass
    finally:
        handle.remove()
    return LowerBlockStates(stack, first_upper, recorded[0], batch["input_ids"])


class LowerStateCache:
    """`lower_block_states` of `language_model` below `module_names` for single rows, kept by their
    token ids until `max_bytes` are held.

    A right-padded row's real tokens never attend to the padding after them and take their
    positions from their own start, so a row's states are the same whichever batch it came in;
    a batch is put together from its rows' states, zeros at the padding (whose outputs no target
    or gradient reads). Rows met once the budget is full are computed every time. Kept rows live
    in CPU memory, whatever the model's device (an accelerator's memory is the scarcer).
    """

    def __init__(self, language_model, module_names: Sequence[str], max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.language_model, self.module_names = language_model, list(module_names)
        self.max_bytes = max_bytes
        self.bytes = 0
        self._first = replayable_block(language_model, module_names)
        self._rows: dict[tuple[int, ...], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def states(self, batch: dict[str, torch.Tensor]) -> LowerBlockStates | None:
        """`lower_block_states` of `batch`, from the rows already held where it can."""
        if self._first is None:
            return None
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        lengths = mask.sum(dim=1).tolist()
        if any(not bool(mask[row, :length].all()) for row, length in enumerate(lengths)):
            return lower_block_states(self.language_model, batch, self.module_names)  # not right-padded
        keys = [tuple(input_ids[row, :length].tolist()) for row, length in enumerate(lengths)]
        rows = [self._rows.get(key) for key in keys]
        missing = [row for row, states in enumerate(rows) if states is None]
        if missing:
            width = max(lengths[row] for row in missing)
            sub_batch = {"input_ids": input_ids[missing, :width], "attention_mask": mask[missing, :width]}
            computed = lower_block_states(self.language_model, sub_batch, self.module_names)
            if not isinstance(computed.output, torch.Tensor):  # a block returning more than its hidden states
                return lower_block_states(self.language_model, batch, self.module_names)
            for index, row in enumerate(missing):
                rows[row] = computed.output[index, : lengths[row]]
                self._keep(keys[row], rows[row])
        hidden = rows[0].new_zeros((*input_ids.shape, rows[0].shape[-1]))
        for row, states in enumerate(rows):
            hidden[row, : lengths[row]] = states
        return LowerBlockStates(*self._first, hidden, input_ids)

    def _keep(self, key: tuple[int, ...], states: torch.Tensor) -> None:
        size = states.numel() * states.element_size()
        if self.bytes + size <= self.max_bytes:
            self._rows[key] = states.to("cpu", copy=True)
            self.bytes += size
