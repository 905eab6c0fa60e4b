"""Settings of MEMIT: the edited layer range and λ, plus the key-value settings shared with ROME."""

from dataclasses import dataclass, field

from serac.core.key_value_config import KeyValueConfig, check_layers, check_number
from serac.core.text_checks import check_text


@dataclass
class MEMITConfig(KeyValueConfig):
    """MEMIT (Meng et al., 2022b): the MLP output matrices of `layers` share each edit's change.

    layers:      consecutive block indices, the range R (negative counts from the end); z is found
                 at the output of the last one. Default: 5 consecutive early blocks of SmolLM2-135M's
                 30, from ROME's best layer in the sweep (3) up to 7 (benchmarks/rome/README.md).
    mom2_weight: λ in Δ = R Kᵀ (λC + K Kᵀ)⁻¹ (the paper's 1.5e4 for GPT-J, with C = E[k kᵀ]). For one
                 edit the update is ROME's scaled by q/(λ + q), q = kᵀC⁻¹k, which is about the key width
                 for a typical key: 16,384 on GPT-J but 1,536 on SmolLM2-135M, so the same λ damps edits
                 here far more (benchmarks/rome/README.md compares 1.5e4 with 1.5e3).
    clamp_factor defaults to 0.75 as in the authors' MEMIT settings (z lives in the residual
    stream, whose norm is large).
    value_cache: a folder where each edit's z is written as soon as it is found, so a batch that
                 stops (a crash, a time limit) re-run with the same edits skips the finished ones
                 (`mend.memit.value_cache`); None: nothing is written.
    Every other setting is documented on `KeyValueConfig`.
    """

    layers: list[int] = field(default_factory=lambda: [3, 4, 5, 6, 7])
    mom2_weight: float = 1.5e4
    clamp_factor: float = 0.75
    value_cache: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.layers = check_layers(self.layers, f"{type(self).__name__}.layers")
        check_number(self.mom2_weight, f"{type(self).__name__}.mom2_weight", positive=True)
        if self.value_cache is not None:
            self.value_cache = check_text(self.value_cache, f"{type(self).__name__}.value_cache")
