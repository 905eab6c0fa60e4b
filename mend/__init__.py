"""The parametric branch: weight editors, one package each (MEND, the fine-tuning family, ROME, MEMIT).

    from mend import MENDEditor, FTEditor, ROMEEditor, MEMITEditor
"""

from mend.finetune import FTConfig, FTEditor, FTKLConfig, FTKLEditor, FTLConfig, FTLEditor
from mend.memit import MEMITConfig, MEMITEditor
from mend.mend import MENDConfig, MENDEditor
from mend.rome import ROMEConfig, ROMEEditor

__all__ = [
    "FTConfig", "FTEditor", "FTKLConfig", "FTKLEditor", "FTLConfig", "FTLEditor",
    "MEMITConfig", "MEMITEditor", "MENDConfig", "MENDEditor", "ROMEConfig", "ROMEEditor",
]
