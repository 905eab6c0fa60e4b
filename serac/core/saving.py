"""The on-disk form of a saved editor: `editor.json` (name + config) beside safetensors files,
and how a folder is written so that a crash or another process never destroys one.

Saving into a folder:
- the path must name a folder that is new, empty, or a saved editor (a readable
  `editor.json`); anything else is refused with `SaveTargetError`, never overwritten;
- everything is written into a staging folder beside it (`.<name>.saving-*`), synced, and
  put in place in one rename (an exchange of the two folders on Linux), so the folder is
  at all times the old copy or the new one, complete; the old copy is deleted only after;
- a staging folder left by a killed save is deleted by the next save into that folder.
Loading checks that the files are there and readable first (`check_saved_files`), so a
damaged folder is a `NotASavedEditorError` naming the file, not a JSON or safetensors error.
"""

import ctypes
import dataclasses
import errno
import fcntl
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError, safe_open

from index.safe_files import staged_file

FORMAT_VERSION = 1
CONFIG_FILE = "editor.json"
_STAGING_MARK = ".saving-"
_RENAME_EXCHANGE = 2  # linux/fs.h


class NotASavedEditorError(ValueError):
    """The path does not hold an editor written by `Editor.save`, or the folder is damaged."""


class SaveTargetError(ValueError):
    """`save` was asked to write where it would destroy something that is not a saved editor."""


def write_atomically(file: Path, write: Callable[[Path], None]) -> None:
    """Call `write(staging_path)` on a new private file beside `file`, then move it over `file`:
    a crash never leaves half a file, and no link is followed (see `index.safe_files`)."""
    with staged_file(file) as (_, staging):
        write(staging)


def write_editor_config(path: str | Path, editor_name: str, config) -> Path:
    """Create the folder and write its config atomically; returns the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    body = {"editor": editor_name, "format_version": FORMAT_VERSION, "config": dataclasses.asdict(config)}
    write_atomically(folder / CONFIG_FILE, lambda staging: staging.write_text(json.dumps(body, indent=2)))
    return folder


def _read_body(path: str | Path) -> dict:
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise NotASavedEditorError(f"{path} is not a saved editor: it has no {CONFIG_FILE}")
    try:
        body = json.loads(file.read_text())
        if not isinstance(body.get("editor"), str) or not isinstance(body.get("config"), dict):
            raise ValueError("missing 'editor' or 'config'")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, AttributeError) as error:
        raise NotASavedEditorError(f"{file} is corrupt (damaged or half-written): {error}") from None
    return body


def saved_editor_name(path: str | Path) -> str:
    return _read_body(path)["editor"]


def read_editor_config(path: str | Path, expected_editor: str, config_class: type):
    """The saved config as a `config_class` instance; a clear error when `path` is not a saved editor
    of that kind or a setting is invalid (the config class checks every value)."""
    body = _read_body(path)
    if body["editor"] != expected_editor:
        raise NotASavedEditorError(f"{path} holds a saved {body['editor']!r} editor, not {expected_editor!r}")
    # Settings renamed since the editor was saved (`config_class.renamed_fields`: old -> new name).
    renamed = getattr(config_class, "renamed_fields", {})
    settings = {renamed.get(key, key): value for key, value in body["config"].items()}
    # Settings added since, whose default changed with them (`config_class.saved_before_field`).
    settings = {**getattr(config_class, "saved_before_field", {}), **settings}
    try:
        return config_class(**settings)
    except (TypeError, ValueError) as error:
        raise NotASavedEditorError(f"{Path(path) / CONFIG_FILE}: the saved config does not fit {config_class.__name__}: {error}") from None


def check_saved_files(folder: Path, required: Iterable[str], skip: Iterable[str] = ()) -> None:
    """NotASavedEditorError naming the first file that is missing, or that cannot be read
    (every .json parsed, every .safetensors header checked against the file's length);
    folders named in `skip` are left to their own checks."""
    for name in required:
        if not (folder / name).exists():
            raise NotASavedEditorError(f"{folder} is not a complete saved editor: {name} is missing (interrupted save or damaged folder)")
    skipped = {folder / name for name in skip}
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or skipped & {path, *path.parents}:
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_bytes())
            elif path.suffix == ".safetensors":
                with safe_open(str(path), "pt"):
                    pass
        except (OSError, UnicodeDecodeError, ValueError, SafetensorError) as error:
            raise NotASavedEditorError(f"{path} is corrupt (damaged or half-written): {error}") from None


def check_save_path(path: str | Path) -> Path:
    """The folder `save(path)` would write: a non-empty path that is not a link or a file."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise SaveTargetError(f"save needs the path of a folder, got {path!r}")
    folder = Path(path)
    if folder.is_symlink():
        raise SaveTargetError(f"refusing to save into {folder}: it is a symbolic link")
    if folder.exists() and not folder.is_dir():
        raise SaveTargetError(f"refusing to save into {folder}: it is a file, not a folder")
    return folder


def check_overwritable(folder: Path) -> None:
    """SaveTargetError unless `folder` is absent, empty, or a readable saved editor."""
    if not folder.exists() or not any(folder.iterdir()):
        return
    try:
        _read_body(folder)
    except NotASavedEditorError as problem:
        raise SaveTargetError(
            f"refusing to save into {folder}: it is not empty and not a saved editor ({problem}); "
            "save into a new or empty folder, or delete this one first"
        ) from None


def _lock_folder(folder: Path) -> int | None:
    """A descriptor holding an exclusive flock on `folder`; None if another process holds it."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


class FolderInUseError(RuntimeError):
    """Another process works in the folder (it holds the folder's lock)."""


@contextmanager
def exclusive_folder(folder: Path, work: str) -> Iterator[Path]:
    """Hold an exclusive lock on `folder` (created if missing) while `work` runs in it; a second
    process that tries gets a FolderInUseError instead of writing beside the first. The kernel
    releases the lock when the holder exits, even by kill -9, so a crash never leaves it held."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = _lock_folder(folder)
    if descriptor is None:
        raise FolderInUseError(f"{folder} is in use: another process is running {work} in it; wait for it to end or stop it")
    try:
        yield folder
    finally:
        os.close(descriptor)


def _remove_abandoned_staging(target: Path) -> None:
    """Delete staging folders of `target` left by killed saves (a live save holds a lock on its own)."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}{_STAGING_MARK}*"):
        try:
            descriptor = _lock_folder(leftover)
        except OSError:
            continue
        if descriptor is not None:
            try:
                shutil.rmtree(leftover, ignore_errors=True)
            finally:
                os.close(descriptor)


@contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A new, locked, empty folder beside `target` to write its next content into; whatever is
    left in it at the end (the old copy, after `replace_folder`) is deleted."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(target)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{_STAGING_MARK}"))
    descriptor = _lock_folder(staging)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if descriptor is not None:
            os.close(descriptor)


def sync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder`, so a rename that publishes it survives power loss."""
    for path in [*folder.rglob("*"), folder]:
        if path.is_symlink():
            continue
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_cwd = -100
    if renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def replace_folder(new: Path, target: Path) -> None:
    """Put the folder `new` at `target` in one rename; the old `target` ends up at `new`.

    Where the two cannot be exchanged atomically, `target` is renamed aside first, so a
    crash between the two renames leaves both copies complete (the old one at `new`)."""
    sync_tree(new)
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        return
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{_STAGING_MARK}old-"))
    os.rename(target, aside / "old")
    os.rename(new, target)
    os.rename(aside / "old", new)
    aside.rmdir()


def move_into(staging: Path, folder: Path) -> None:
    """Move each entry of `staging` into `folder`, each in one rename (folders exchanged),
    `editor.json` last; replaced entries end up in `staging`."""
    entries = sorted(staging.iterdir(), key=lambda entry: entry.name == CONFIG_FILE)
    for entry in entries:
        if entry.is_dir():
            replace_folder(entry, folder / entry.name)
        else:
            sync_tree(entry)
            os.replace(entry, folder / entry.name)


def working_copy(saved: str | Path, copy: str | Path) -> Path:
    """A fresh copy of the saved editor folder `saved` at `copy`, which an editor loaded from it
    may write into (a SERAC or cache memory records every edit, and `reset` empties it) without
    touching `saved`. Safetensors files are hard-linked when the file system allows: they are
    written once by a save and only ever replaced whole, never changed in place, and a SERAC
    editor's models are hundreds of MB. Everything else (the memory's database and index) is copied.
    """
    saved, copy = Path(saved), Path(copy)
    if not saved.is_dir():
        raise NotASavedEditorError(f"{saved} is not a folder: give the folder a trained editor was saved to")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(saved, copy, copy_function=_link_safetensors)
    return copy


def _link_safetensors(source: str, destination: str) -> None:
    if source.endswith(".safetensors"):
        try:
            os.link(source, destination)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copy2(source, destination)
