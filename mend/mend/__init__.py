"""MEND (Mitchell et al., ICLR 2022): editor networks that turn an edit's gradient into a weight update.

Files: `config` (MENDConfig), `editor` (the Editor), `train` (training the editor networks),
and the algorithm's steps: `edited_modules` (which layers), `compute_gradient_factors` (u and
δ of the edit loss at each layer), `editor_network` (g), `pseudo_gradient` (the weight
update), `editor_network_training` (g's training objective in the shared loop).
"""

from mend.mend.config import MENDConfig
from mend.mend.editor import MENDEditor

__all__ = ["MENDConfig", "MENDEditor"]
