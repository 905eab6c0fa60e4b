"""The hidden-state cache baseline (MEND, Appendix G): edit prompts' hidden states as keys, targets as answers.

Files: `config` (CacheConfig), `editor` (the Editor), `train` (calibrating ε), and the
steps: `hidden_state_keys` (the keys), `calibration` (the distance threshold ε).
"""

from serac.cache.config import CacheConfig
from serac.cache.editor import CacheEditor

__all__ = ["CacheConfig", "CacheEditor"]
