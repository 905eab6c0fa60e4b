"""Settings of ROME: which MLP output matrix is rewritten, plus the key-value settings shared with MEMIT."""

from dataclasses import dataclass

from serac.core.key_value_config import KeyValueConfig, check_layers


@dataclass
class ROMEConfig(KeyValueConfig):
    """ROME (Meng et al., 2022a): one rank-one update of the MLP output matrix of block `layer`.

    layer: block index in the layer stack (negative counts from the end). The default, 7 of
           SmolLM2-135M's 30 blocks (about ROME's relative depth, 17 of GPT-2 XL's 48), is compared
           with 3 and 13 by the layer sweep in benchmarks/rome/README.md.
    Every other setting is documented on `serac.core.key_value_config.KeyValueConfig`.
    """

    layer: int = 7

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layers([self.layer], f"{type(self).__name__}.layer")
