"""Writing files so that a crash never leaves half a file and a link is never followed.

Every file the package writes goes through `staged_file`: the bytes go to a new private
file created beside the destination (O_EXCL, so an existing file or a symbolic link
planted under a predictable name is never opened), which is synced and then renamed over
the destination (rename replaces a link at the destination, never its target).
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def staged_file(path: str | Path) -> Iterator[tuple[BinaryIO, Path]]:
    """(an open binary file, its path) to write `path`'s new content into; it replaces `path`
    when the block ends without error, and is removed otherwise."""
    path = Path(path)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle, Path(name)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` through `staged_file`."""
    with staged_file(path) as (handle, _):
        handle.write(data)
