"""The edit memory of the SERAC editor: edits stored durably and retrieved by vector.

It knows nothing of language models: vectors are computed elsewhere and passed in.
"""

from index.config import INDEX_KINDS, IVF_STORAGES, IndexKind, MemoryConfig
from index.errors import (
    EditMemoryError,
    EditNotFoundError,
    EncoderMismatchError,
    IndexFileError,
    InvalidEditError,
    MemoryClosedError,
    MemoryInUseError,
    NotAnEditMemoryError,
)
from index.memory import EditMemory, Hit, memory_folder_locked
from index.store import Edit, EditStore, StoreIdentity
from index.vectors import VectorIndex

__all__ = [
    "INDEX_KINDS",
    "IVF_STORAGES",
    "Edit",
    "EditMemory",
    "EditMemoryError",
    "EditNotFoundError",
    "EditStore",
    "EncoderMismatchError",
    "Hit",
    "IndexFileError",
    "IndexKind",
    "InvalidEditError",
    "MemoryClosedError",
    "MemoryConfig",
    "MemoryInUseError",
    "NotAnEditMemoryError",
    "StoreIdentity",
    "VectorIndex",
    "memory_folder_locked",
]
