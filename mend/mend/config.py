"""Settings of MEND (Mitchell et al., ICLR 2022): which matrices are edited and how the editor networks learn."""

import re
from dataclasses import dataclass, field

from serac.core.setting_checks import SettingsError, check_base_model
from serac.core.text_checks import check_text

# Containers of the MLP's matrices in common architectures, by module name: `mlp` (Llama,
# GPT-2, GPT-J, GPT-NeoX, Falcon), `feed_forward`/`ffn` (Mistral-style and others),
# `DenseReluDense` (T5), and OPT/BART's bare `fc1`/`fc2`. A pattern, not a branch on the
# model: another architecture is handled by setting `module_pattern` or `edit_modules`.
MLP_MODULE_PATTERN = r"(^|\.)(mlp|feed_forward|ffn|DenseReluDense)\.|(^|\.)fc[12]$"
INITS = ("identity", "random")
LOCALITY_POSITIONS = ("answer", "input")


@dataclass
class MENDConfig:
    """MEND's editor networks and the matrices they edit.

    model_name:     the base model (a name `serac.core.models.load_model` resolves); saved so
                    `load` can rebuild the editor.
    prompt_format:  "auto", "plain" or "chat" (see `resolve_prompt_format`).
    edit_modules:   names of the edited linear layers (nn.Linear or GPT-2 Conv1D). None picks
                    the layers matching `module_pattern` in blocks `layers` of every layer
                    stack; the editor stores the names it picked, so a saved editor is stable.
    module_pattern: regex searched in module names (relative to their block) to pick the
                    edited layers; the default picks the MLP matrices.
    layers:         block indices in each layer stack (negative counts from the end).
    rank:           rank of the low-rank matrices U V of the editor networks (capped at the
                    network's width, the sum of a layer's input and output sizes).
    init:           "identity": U = 0, so at initialisation a network returns its input and
                    MEND's update is a plain gradient step of size `edit_lr`; "random": U is
                    drawn small at random too.
    edit_lr:        initial value of the learned per-layer step size alpha.
    edit_lr_lr:     learning rate of the step sizes alpha (the networks use the training lr).
    c_edit:         weight of the edit loss: L = c_edit * L_edit + L_locality.
    locality_positions: where training's locality loss compares the model before and after an
                    edit, KL(pre ‖ post) of the next-token distributions averaged over: "answer",
                    the locality answer's tokens (teacher forced); "input", every position of the
                    locality input, question and answer (as MEND's code: its KL is masked with
                    the locality input's attention mask). An encoder-decoder's decoder sees only
                    the answer, so there both are the same.
    max_new_tokens: answer length of `query` when the caller does not give one.
    """

    model_name: str = "smollm2-135m"
    prompt_format: str = "auto"
    edit_modules: list[str] | None = None
    module_pattern: str = MLP_MODULE_PATTERN
    layers: list[int] = field(default_factory=lambda: [-3, -2, -1])
    rank: int = 1920
    init: str = "identity"
    edit_lr: float = 1e-4
    edit_lr_lr: float = 1e-4
    c_edit: float = 0.1
    locality_positions: str = "answer"
    max_new_tokens: int = 20

    def __post_init__(self) -> None:
        check_base_model(self)
        if self.edit_modules is not None:
            if isinstance(self.edit_modules, (str, bytes)) or not isinstance(self.edit_modules, (list, tuple)):
                raise SettingsError(f"MENDConfig.edit_modules must be a list of module names or None, got {self.edit_modules!r}")
            if not self.edit_modules:
                raise SettingsError("MENDConfig.edit_modules must name at least one module (or be None for the default)")
            self.edit_modules = [check_text(name, f"MENDConfig.edit_modules[{i}]") for i, name in enumerate(self.edit_modules)]
            duplicates = sorted({name for name in self.edit_modules if self.edit_modules.count(name) > 1})
            if duplicates:
                raise SettingsError(f"MENDConfig.edit_modules names {duplicates} more than once")
        try:
            re.compile(self.module_pattern)
        except (re.error, TypeError) as error:
            raise SettingsError(f"MENDConfig.module_pattern {self.module_pattern!r} is not a valid regex: {error}") from None
        if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, (list, tuple)) or not self.layers:
            raise SettingsError(f"MENDConfig.layers must be a non-empty list of block indices, got {self.layers!r}")
        if not all(isinstance(index, int) and not isinstance(index, bool) for index in self.layers):
            raise SettingsError(f"MENDConfig.layers must hold ints, got {self.layers!r}")
        self.layers = list(self.layers)
        for name in ("rank", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"MENDConfig.{name} must be an int >= 1, got {value!r}")
        if self.init not in INITS:
            raise SettingsError(f"MENDConfig.init must be one of {INITS}, got {self.init!r}")
        if self.locality_positions not in LOCALITY_POSITIONS:
            raise SettingsError(f"MENDConfig.locality_positions must be one of {LOCALITY_POSITIONS}, got {self.locality_positions!r}")
        for name in ("edit_lr", "edit_lr_lr", "c_edit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise SettingsError(f"MENDConfig.{name} must be a number > 0, got {value!r}")
