"""Settings of ROME: which MLP output matrix is rewritten, plus the key-value settings shared with MEMIT."""

from dataclasses import dataclass

from serac.core.key_value_config import KeyValueConfig, check_layers


@dataclass
class ROMEConfig(KeyValueConfig):
    """ROME (Meng et al., 2022a): one rank-one update of the MLP output matrix of block `layer`.

    layer: block index in the layer stack (negative counts from the end). The default, 3 of
           SmolLM2-135M's 30 blocks, is the best of 3, 7 and 13 in the layer sweep of
           benchmarks/rome/README.md (24 CounterFact records: a small sample, differences of one
           or two records).
    Every other setting is documented on `serac.core.key_value_config.KeyValueConfig`.
    """

    layer: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layers([self.layer], f"{type(self).__name__}.layer")
