"""MEMIT (Meng et al., 2022b) on the shared Editor interface.

Files: `config` (MEMITConfig), `editor` (MEMITEditor), and the step `compute_multi_layer_update`
(each layer's share of the residual and its batch solve); the steps shared with ROME (keys,
values, statistics, subject tokens) are in `serac.core`.
"""

from mend.memit.config import MEMITConfig
from mend.memit.editor import MEMITEditor

__all__ = ["MEMITConfig", "MEMITEditor"]
