"""Errors raised by the edit memory.

Every error a user can cause is one of these, with a message naming the file or the
value at fault, so callers never have to read a raw sqlite or faiss traceback.
"""


class EditMemoryError(Exception):
    """Base class of every error raised by the `index` package."""


class InvalidEditError(EditMemoryError, ValueError):
    """A prompt, target, vector, id or metadata value was rejected before being stored."""


class EditNotFoundError(EditMemoryError, KeyError):
    """No edit has the requested id."""

    def __str__(self) -> str:
        # KeyError quotes its message; this error's message is a sentence.
        return str(self.args[0]) if self.args else super().__str__()


class EncoderMismatchError(EditMemoryError):
    """A memory was opened with an encoder name or dimension other than the one it was built with."""


class NotAnEditMemoryError(EditMemoryError):
    """A path that should hold an edit memory (or its store) does not."""


class MemoryInUseError(EditMemoryError):
    """Another EditMemory, in this process or another one, already has the folder open."""


class IndexFileError(EditMemoryError):
    """A vector index file cannot be used: missing, truncated, corrupt or of another kind."""


class MemoryClosedError(EditMemoryError):
    """The memory or store was used after close()."""
