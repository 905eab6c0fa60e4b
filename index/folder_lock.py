"""FolderLock: one EditMemory per folder at a time.

Two memories open on one folder would each keep their own in-memory index and save it
over the other's, so the second open fails instead. The lock is an flock(2) on a file in
the folder: the kernel releases it when the holder exits, even by kill -9, so a crash
never leaves a folder locked. (POSIX only.)
"""

import fcntl
from pathlib import Path

from index.errors import MemoryInUseError


class FolderLock:
    """An exclusive, non-blocking lock held until release()."""

    def __init__(self, lock_file: Path) -> None:
        self.lock_file = lock_file
        self._handle = open(lock_file, "a")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            self._handle.close()
            raise MemoryInUseError(
                f"{lock_file.parent} is already open in another EditMemory (this or another process holds {lock_file.name})"
            ) from error

    @property
    def is_released(self) -> bool:
        return self._handle.closed

    def release(self) -> None:
        """Release the lock; safe to call twice."""
        if not self.is_released:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
