"""The one writer of edits: every add and remove runs on a single worker thread, in the order
the requests arrived, and is acknowledged only once it is durable.

Durable means: the edit survives a `kill -9` of the server (and a power cut, as far as the
disk honours fsync) from the moment its id is returned.
- An editor whose edits live in the served folder's memory (SERAC loaded from the folder)
  commits each batch to SQLite before returning its ids; nothing more is needed.
- Any other editor (weight editors: MEND, FT, ROME, MEMIT; the cache, which works on a copy of
  its memory) is saved after each change: into a staging folder beside the served one, which
  then replaces it in one rename, so a kill leaves the previous or the new state, whole.
  Files of the folder the editor does not write itself (e.g. `calibration.json`) are kept.
  If that save fails, an added batch is undone and the request fails.
"""

import asyncio
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

from serac.core.editor import Editor
from serac.core.memory_editor import MEMORY_FOLDER, MemoryEditor
from serac.core.records import EditRequest
from serac.core.saving import replace_folder, staging_folder

T = TypeVar("T")


def edits_durable_in(editor: Editor, folder: Path) -> bool:
    """Whether the editor commits its edits into `folder` by itself."""
    return isinstance(editor, MemoryEditor) and editor.memory.path.resolve() == (folder / MEMORY_FOLDER).resolve()


def save_in_place(editor: Editor, folder: Path) -> None:
    """Save `editor` over `folder` in one rename, keeping the folder's files the editor does not write."""
    with staging_folder(folder) as staging:
        editor.save(staging)
        for entry in folder.iterdir():
            kept = staging / entry.name
            if entry.name.startswith(".") or kept.exists():
                continue
            if entry.is_dir():
                shutil.copytree(entry, kept, symlinks=True)
            else:
                shutil.copy2(entry, kept, follow_symlinks=False)
        replace_folder(staging, folder)


class EditWriter:
    """`model_turn` is held while an edit changes the editor, so no query batch runs meanwhile
    (needed by editors that write weights in place; a memory orders its changes itself)."""

    def __init__(self, editor: Editor, folder: Path, model_turn: AbstractContextManager):
        self.editor = editor
        self.folder = folder
        self.model_turn = model_turn
        self.saves_after_change = not edits_durable_in(editor, folder)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serac-edits")

    async def add(self, edits: list[EditRequest]) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._add, edits)

    async def remove(self, edit_id: str) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._remove, edit_id)

    async def read(self, read: Callable[[], T]) -> T:
        """`read()` on the writer's thread, between two changes: it sees every batch whole."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, read)

    def stop(self) -> None:
        self._thread.shutdown(wait=True)

    def _add(self, edits: list[EditRequest]) -> list[str]:
        with self.model_turn:
            ids = self.editor.add_edits(edits)
        if self.saves_after_change:
            try:
                save_in_place(self.editor, self.folder)
            except BaseException:
                with self.model_turn:
                    for edit_id in ids:
                        self.editor.remove_edit(edit_id)
                raise
        return ids

    def _remove(self, edit_id: str) -> None:
        with self.model_turn:
            self.editor.remove_edit(edit_id)
        if self.saves_after_change:
            save_in_place(self.editor, self.folder)
