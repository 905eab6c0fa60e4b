"""MEND (Mitchell et al., ICLR 2022): editor networks that turn an edit's gradient into a weight update.

Files follow the algorithm's steps: `edited_modules` (which layers), `compute_gradient_factors`
(u and δ of the edit loss at each layer), `editor_network` (g), `pseudo_gradient` (the weight
update), `training_loss` (how g is trained with the shared loop), `editor` (the Editor).
"""

from mend.method.config import MENDConfig
from mend.method.editor import MENDEditor
from mend.method.training_loss import MENDTraining

__all__ = ["MENDConfig", "MENDEditor", "MENDTraining"]
