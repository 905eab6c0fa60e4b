"""SERAC (Mitchell et al., ICML 2022): edits in an explicit memory, a scope classifier, and a counterfactual model.

Files: `config` (SERACConfig), `editor` (the Editor), `train` (the scope classifier, the
counterfactual model, then the threshold), and the steps: `scope_classifier` and
`scope_classifier_training`, `counterfactual` and `counterfactual_training`, `training_data`
(their examples), `router` (which stored edit covers a query), `calibration` (the threshold).
"""

from serac.serac.config import SERACConfig
from serac.serac.editor import SERAC

__all__ = ["SERAC", "SERACConfig"]
