"""Fine-tuning baselines: FT, FT+KL and FT-L, on the shared Editor interface.

Files: `config` (the three configs), `editor` (the three Editors), and the steps:
`trainable_parameters` (what is trained), `locality` (FT+KL's anchor), `fine_tune` (one run).
"""

from mend.finetune.config import FTConfig, FTKLConfig, FTLConfig
from mend.finetune.editor import FTEditor, FTKLEditor, FTLEditor

__all__ = ["FTConfig", "FTEditor", "FTKLConfig", "FTKLEditor", "FTLConfig", "FTLEditor"]
