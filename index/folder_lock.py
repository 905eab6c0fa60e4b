"""FolderLock: one EditMemory per folder at a time.

Two memories open on one folder would each keep their own in-memory index and save it
over the other's, so the second open fails instead. The lock is an flock(2) on a file in
the folder: the kernel releases it when the holder exits, even by kill -9, so a crash
never leaves a folder locked. (POSIX only.) The lock file is opened without following a
symbolic link, and one that is a directory or a link is refused.
"""

import errno
import fcntl
import os
from pathlib import Path

from index.errors import MemoryInUseError, NotAnEditMemoryError


def _open_lock_file(lock_file: Path) -> int:
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except IsADirectoryError as error:
        raise NotAnEditMemoryError(f"{lock_file} is a directory, not a lock file; remove it to open {lock_file.parent}") from error
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotAnEditMemoryError(f"{lock_file} is a symbolic link; a memory folder's lock file must be a plain file") from error
        raise NotAnEditMemoryError(f"cannot open the lock file {lock_file}: {error.strerror}") from error


class FolderLock:
    """An exclusive, non-blocking lock held until release()."""

    def __init__(self, lock_file: Path) -> None:
        self.lock_file = lock_file
        self._descriptor: int | None = _open_lock_file(lock_file)
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            os.close(self._descriptor)
            self._descriptor = None
            raise MemoryInUseError(
                f"{lock_file.parent} is already open in another EditMemory (this or another process holds {lock_file.name})"
            ) from error

    @property
    def is_released(self) -> bool:
        return self._descriptor is None

    def release(self) -> None:
        """Release the lock; safe to call twice."""
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None
