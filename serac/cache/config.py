"""Settings of the hidden-state cache baseline (MEND, Mitchell et al. 2022, Appendix G)."""

import math
from dataclasses import dataclass

from serac.core.text_checks import check_text


@dataclass
class CacheConfig:
    """A cache of edits keyed by the base model's hidden states.

    model_name:         the base model (a name `serac.core.models.load_model` resolves); saved so
                        `load` can rebuild the editor.
    prompt_format:      "plain" or "chat" (see `LanguageModel`); the keys are computed on the
                        formatted prompt.
    epsilon:            a query whose key lies within this Euclidean distance of a cached key is
                        answered with that edit's target. Distances depend on the model's scale:
                        calibrate it (`serac-train alg=cache`) rather than guess.
    calibrated_epsilon: ε* chosen on validation edits (None: not calibrated); the comparison
                        reports a calibrated cache at ε*/2, ε* and 2ε*, as MEND's Table 11.
    batch_size:         prompts per forward pass when computing keys.
    max_new_tokens:     answer length of the base model in `query` when the caller gives none.
    """

    model_name: str = "smollm2-135m"
    prompt_format: str = "plain"
    epsilon: float = 1.0
    calibrated_epsilon: float | None = None
    batch_size: int = 32
    max_new_tokens: int = 20

    def __post_init__(self) -> None:
        check_text(self.model_name, "CacheConfig.model_name")
        if self.prompt_format not in ("plain", "chat"):
            raise ValueError(f"CacheConfig.prompt_format must be 'plain' or 'chat', got {self.prompt_format!r}")
        _check_distance(self.epsilon, "CacheConfig.epsilon")
        if self.calibrated_epsilon is not None:
            _check_distance(self.calibrated_epsilon, "CacheConfig.calibrated_epsilon")
        for name in ("batch_size", "max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CacheConfig.{name} must be an int >= 1, got {value!r}")


def _check_distance(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{what} must be a finite distance >= 0, got {value!r}")
