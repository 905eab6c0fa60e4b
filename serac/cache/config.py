"""Settings of the hidden-state cache baseline (MEND, Mitchell et al. 2022, Appendix G)."""

import math
from dataclasses import dataclass

from serac.core.setting_checks import (
    MAX_BATCH_SIZE,
    MAX_NEW_TOKENS,
    check_base_model,
    check_int,
    check_real,
)


@dataclass
class CacheConfig:
    """A cache of edits keyed by the base model's hidden states.

    model_name:         the base model (a name `serac.core.models.load_model` resolves); saved so
                        `load` can rebuild the editor.
    prompt_format:      "auto", "plain" or "chat" (see `resolve_prompt_format`); the keys are computed on the
                        formatted prompt.
    epsilon:            a query whose key lies within this Euclidean distance of a cached key is
                        answered with that edit's target. Distances depend on the model's scale:
                        calibrate it (`serac-train alg=cache`) rather than guess.
    calibrated_epsilon: ε* chosen on validation edits (None: not calibrated); the comparison
                        reports a calibrated cache at ε*/2, ε* and 2ε*, as MEND's Table 11.
    batch_size:         prompts per forward pass when computing keys (1..4096).
    max_new_tokens:     answer length of the base model in `query` when the caller gives none (1..512).
    """

    model_name: str = "smollm2-135m"
    prompt_format: str = "auto"
    epsilon: float = 1.0
    calibrated_epsilon: float | None = None
    batch_size: int = 32
    max_new_tokens: int = 20

    def __post_init__(self) -> None:
        check_base_model(self)
        self.epsilon = check_real(self.epsilon, "CacheConfig.epsilon (a distance)", 0.0, math.inf)
        if self.calibrated_epsilon is not None:
            self.calibrated_epsilon = check_real(self.calibrated_epsilon, "CacheConfig.calibrated_epsilon (a distance)", 0.0, math.inf)
        check_int(self.batch_size, "CacheConfig.batch_size", 1, MAX_BATCH_SIZE)
        check_int(self.max_new_tokens, "CacheConfig.max_new_tokens", 1, MAX_NEW_TOKENS)
