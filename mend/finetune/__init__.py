"""Fine-tuning baselines: FT, FT+KL and FT-L, on the shared Editor interface."""

from mend.finetune.config import FTConfig, FTKLConfig, FTLConfig
from mend.finetune.editor import FTEditor, FTKLEditor, FTLEditor

__all__ = ["FTConfig", "FTKLConfig", "FTLConfig", "FTEditor", "FTKLEditor", "FTLEditor"]
