"""The parametric branch: weight editors, one package each (MEND, the fine-tuning family).

    from mend import MENDEditor, FTEditor
"""

from mend.finetune import FTConfig, FTEditor, FTKLConfig, FTKLEditor, FTLConfig, FTLEditor
from mend.mend import MENDConfig, MENDEditor

__all__ = ["FTConfig", "FTEditor", "FTKLConfig", "FTKLEditor", "FTLConfig", "FTLEditor", "MENDConfig", "MENDEditor"]
