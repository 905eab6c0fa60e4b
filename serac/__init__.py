"""Model editing with SERAC: the SERAC editor, the hidden-state cache, and the core every method shares.

    from serac import SERAC
    editor = SERAC.load("trained-serac")
    editor.add_edit("Who is the architect of Toodyay Fire Station?", "Frank Lloyd Wright")

The weight editors (MEND, FT, ...) are in `mend`, the edit memory in `index`.
"""

from serac.cache import CacheConfig, CacheEditor
from serac.core.editor import Editor, QueryResult
from serac.core.records import EditRecord, EditRequest
from serac.serac import SERAC, SERACConfig

__all__ = ["SERAC", "CacheConfig", "CacheEditor", "EditRecord", "EditRequest", "Editor", "QueryResult", "SERACConfig"]
