"""ROME (Meng et al., 2022a) on the shared Editor interface.

Files: `config` (ROMEConfig), `editor` (ROMEEditor), and the step `compute_rank_one_update`
(the closed form); the steps shared with MEMIT (keys, values, statistics, subject tokens) are in
`serac.core`.
"""

from mend.rome.config import ROMEConfig
from mend.rome.editor import ROMEEditor

__all__ = ["ROMEConfig", "ROMEEditor"]
