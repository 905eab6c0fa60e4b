"""Settings of the fine-tuning baselines: FT, FT+KL and FT-L share one set of options."""

import math
import re
from dataclasses import dataclass, field

from serac.core.architectures import MLP_OUTPUT_PATTERN
from serac.core.setting_checks import SettingsError, check_base_model
from serac.core.text_checks import check_text

OPTIMIZERS = ("adam", "adamw", "sgd")

ALL_PARAMETERS = "all"


@dataclass
class FTConfig:
    """Plain fine-tuning (FT): `steps` optimizer steps on the edits' teacher-forced NLL.

    model_name:        the base model (a name `serac.core.models.load_model` resolves); saved
                       so `load` can rebuild the editor.
    prompt_format:     "auto", "plain" or "chat" (see `resolve_prompt_format`).
    parameter_pattern: regex searched in parameter names to choose what is trained; the default
                       picks the MLP output projections; "all" picks every parameter.
    layers:            indices into the model's layer stack (negative counts from the end; an
                       encoder-decoder has two stacks, the index applies to each); None trains
                       the matching parameters of every layer and outside the stack too.
    steps, lr, optimizer: the fine-tuning run of each `add_edits` call (a fresh optimizer each call).
    early_stop_nll:    stop once the edits' mean NLL is below this (None: always run `steps`).
    norm_constraint:   FT-L's epsilon: after every step each trained weight is clamped to
                       within +-epsilon of its unedited value (None: unconstrained).
    kl_weight:         FT+KL's weight of the KL(base || edited) penalty on `locality_prompts`.
    locality_prompts:  inputs whose outputs the KL penalty keeps close to the unedited model's.
    max_new_tokens:    answer length of `query` when the caller does not give one.
    """

    model_name: str = "smollm2-135m"
    prompt_format: str = "auto"
    parameter_pattern: str = MLP_OUTPUT_PATTERN
    layers: list[int] | None = field(default_factory=lambda: [-2])
    steps: int = 25
    lr: float = 5e-4
    optimizer: str = "adam"
    early_stop_nll: float | None = None
    norm_constraint: float | None = None
    kl_weight: float = 0.0
    locality_prompts: list[str] = field(default_factory=list)
    max_new_tokens: int = 20

    def __post_init__(self) -> None:
        kind = type(self).__name__
        check_base_model(self)
        if not isinstance(self.parameter_pattern, str) or not self.parameter_pattern:
            raise SettingsError(f"{kind}.parameter_pattern must be a non-empty regex or 'all', got {self.parameter_pattern!r}")
        try:
            re.compile(self.parameter_pattern)
        except re.error as error:
            raise SettingsError(f"{kind}.parameter_pattern {self.parameter_pattern!r} is not a valid regex: {error}") from None
        if self.layers is not None:
            if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, (list, tuple)) or not self.layers:
                raise SettingsError(f"{kind}.layers must be a non-empty list of layer indices or None, got {self.layers!r}")
            if not all(isinstance(index, int) and not isinstance(index, bool) for index in self.layers):
                raise SettingsError(f"{kind}.layers must hold ints, got {self.layers!r}")
            self.layers = list(self.layers)
        for name in ("steps", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"{kind}.{name} must be an int >= 1, got {value!r}")
        _check_positive(self.lr, f"{kind}.lr")
        if self.optimizer not in OPTIMIZERS:
            raise SettingsError(f"{kind}.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.early_stop_nll is not None:
            _check_positive(self.early_stop_nll, f"{kind}.early_stop_nll")
        if self.norm_constraint is not None:
            _check_positive(self.norm_constraint, f"{kind}.norm_constraint")
        kl_weight = self.kl_weight
        if isinstance(kl_weight, bool) or not isinstance(kl_weight, (int, float)) or not 0 <= kl_weight < math.inf:
            raise SettingsError(f"{kind}.kl_weight must be a finite number >= 0, got {self.kl_weight!r}")
        if isinstance(self.locality_prompts, (str, bytes)) or not isinstance(self.locality_prompts, (list, tuple)):
            raise SettingsError(f"{kind}.locality_prompts must be a list of strings, got {self.locality_prompts!r}")
        self.locality_prompts = [check_text(p, f"{kind}.locality_prompts[{i}]") for i, p in enumerate(self.locality_prompts)]


@dataclass
class FTKLConfig(FTConfig):
    """FT+KL: FT plus `kl_weight` x KL(unedited || edited) on the locality prompts' answers."""

    kl_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kl_weight <= 0:
            raise SettingsError(f"FTKLConfig.kl_weight must be > 0 (with 0 it is plain FT: use FTConfig), got {self.kl_weight}")


@dataclass
class FTLConfig(FTConfig):
    """FT-L (Zhu et al. 2020, as run in the ROME paper): one layer, weights kept in an L-inf ball.

    Defaults follow ROME's FT-L: 25 Adam steps at lr 5e-4, epsilon 5e-4, early stop at NLL 1e-2.
    The loss is the same teacher-forced NLL of every target token as FT's (ROME's code instead
    scores all target tokens at the prompt's last position).
    """

    early_stop_nll: float | None = 1e-2
    norm_constraint: float | None = 5e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm_constraint is None:
            raise SettingsError("FTLConfig.norm_constraint (epsilon) must be set; without it FT-L is plain FT: use FTConfig")


def _check_positive(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise SettingsError(f"{what} must be a finite number > 0, got {value!r}")
