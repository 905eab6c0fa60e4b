"""The hidden-state cache baseline (MEND, Appendix G): edit prompts' hidden states as keys, targets as answers.

Files: `config` (CacheConfig), `hidden_state_keys` (the keys), `calibration` (the distance
threshold ε), `editor` (the Editor).
"""

from mend.cache.calibration import Calibration, calibrate_epsilon
from mend.cache.config import CacheConfig
from mend.cache.editor import CacheEditor

__all__ = ["CacheConfig", "CacheEditor", "Calibration", "calibrate_epsilon"]
