"""What the memory-based editors (SERAC, the hidden-state cache) share: edits kept in an
`index.EditMemory`, string ids over the memory's integer ids, and answers split by route
(a prompt covered by a stored edit is answered from it, any other by the base model).
"""

import shutil
import tempfile
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from index import EditMemory, MemoryConfig, memory_folder_locked
from index.store import Edit
from index.validation import LARGEST_EDIT_ID
from serac.core.editor import Editor, QueryResult, StoredEdit
from serac.core.records import EditRequest
from serac.core.saving import (
    check_overwritable,
    check_save_path,
    move_into,
    replace_folder,
    staging_folder,
    write_editor_config,
)

MEMORY_FOLDER = "memory"


class MemoryEditor(Editor, ABC):
    """An editor whose edits live in `self.memory`; `open_memory` sets it up."""

    memory: EditMemory

    def open_memory(
        self,
        memory_path: str | Path | None,
        dim: int,
        encoder_name: str,
        config: MemoryConfig,
        initial_memory: str | Path | None = None,
    ) -> None:
        """Keep the edits in `memory_path` (durably), or in a temporary folder removed by `close`
        (or when the editor is dropped) if it is None. `initial_memory` is a memory folder whose
        edits are copied in first (that folder is left untouched)."""
        folder = Path(memory_path) if memory_path is not None else Path(tempfile.mkdtemp(prefix=f"{self.name}-memory-"))
        self._remove_temporary = weakref.finalize(self, shutil.rmtree, folder, True) if memory_path is None else None
        if initial_memory is not None:
            with EditMemory.open_existing(initial_memory, config) as saved:
                saved.copy_to(folder)
        self.memory = EditMemory(folder, dim, encoder_name, config)

    def memory_stats(self) -> dict:
        """How the memory searches (see `index.EditMemory.info`): edits, exact or approximate,
        a background index build, and the approximate index's recall against exact search."""
        return self.memory.info()

    def edit_ids(self) -> list[str]:
        return [str(edit.id) for edit in self.memory.list()]

    def store_edits(self, edits: list[EditRequest], vectors: np.ndarray) -> list[str]:
        """Commit a checked batch with its retrieval vectors, the subjects kept as metadata; their ids."""
        metadata = [{"subject": edit.subject} if edit.subject else None for edit in edits]
        ids = self.memory.add_many([edit.prompt for edit in edits], [edit.target for edit in edits], vectors, metadata)
        return [str(edit_id) for edit_id in ids]

    def stored_edits(self) -> list[StoredEdit]:
        return [_stored(edit) for edit in self.memory.list()]

    def stored_edit(self, edit_id: str) -> StoredEdit:
        return _stored(self.memory.get(memory_id(edit_id)))

    def query_batch(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[QueryResult]:
        """Answers from the stored edits for the prompts they cover; the base model answers the others."""
        return self._answer(prompts, max_new_tokens, base_answers=True)

    def answer_from_edits(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[QueryResult | None]:
        """The answers of the prompts a stored edit covers, None for the others: those are the
        base model's to answer, here (`query_batch`) or elsewhere (a server's upstream model)."""
        return self._answer(prompts, max_new_tokens, base_answers=False)

    @abstractmethod
    def _answer(self, prompts: Sequence[str], max_new_tokens: int | None, base_answers: bool) -> list[QueryResult | None]:
        """Both of the above: the covered prompts answered from the edits, the others by the base
        model when `base_answers`, else None."""

    def remove_edit(self, edit_id: str) -> None:
        self.memory.remove(memory_id(edit_id))

    def reset(self) -> None:
        self.memory.clear()

    def save_editor(self, path: str | Path, config, write_weights: Callable[[Path], None] | None = None) -> Path:
        """Save the editor into the folder `path`: `editor.json` with `config`, what
        `write_weights(folder)` writes, and a copy of the edits in `memory/`.

        Never destroys edits (see `serac.core.saving`): a folder that is neither new, empty,
        nor a saved editor is refused (SaveTargetError); one whose memory another editor,
        in this or another process, has open is refused (index.MemoryInUseError); the new
        copy is written beside the folder and put in place in one rename. Saving into the
        folder the editor works in (a loaded editor's) replaces its other files one by one,
        each in one rename, and flushes the memory in place."""
        folder = check_save_path(path)
        if (folder / MEMORY_FOLDER).resolve() == self.memory.path.resolve():
            with staging_folder(folder) as staging:
                self._write_editor(staging, config, write_weights)
                move_into(staging, folder)
            self.memory.flush()
            return folder
        check_overwritable(folder)  # before taking the lock, which creates memory.lock
        with memory_folder_locked(folder / MEMORY_FOLDER):
            with staging_folder(folder) as staging:
                self._write_editor(staging, config, write_weights)
                self.memory.copy_to(staging / MEMORY_FOLDER)
                replace_folder(staging, folder)
        return folder

    def _write_editor(self, folder: Path, config, write_weights: Callable[[Path], None] | None) -> None:
        if write_weights is not None:
            write_weights(folder)
        write_editor_config(folder, self.name, config)

    def close(self) -> None:
        """Release the memory folder (and delete it when it is temporary); safe to call twice."""
        self.memory.close()
        if self._remove_temporary is not None:
            self._remove_temporary()


def memory_id(edit_id: str) -> int:
    """The memory's integer id behind a string edit id; KeyError for anything that is not one."""
    if not isinstance(edit_id, str) or not edit_id.isascii() or not edit_id.isdecimal() or int(edit_id) > LARGEST_EDIT_ID:
        raise KeyError(f"no edit with id {edit_id!r}")
    return int(edit_id)


def _stored(edit: Edit) -> StoredEdit:
    return StoredEdit(str(edit.id), edit.prompt, edit.target, edit.metadata.get("subject"))


def by_route(routed: Sequence[bool], on_routed: Callable[[list[int]], list], on_unrouted: Callable[[list[int]], list]) -> list:
    """One result per position, in order: `on_routed(positions)` answers the routed positions,
    `on_unrouted(positions)` the others (each is called only when it has positions)."""
    results = [None] * len(routed)
    for answer, chosen in ((on_routed, True), (on_unrouted, False)):
        positions = [i for i, flag in enumerate(routed) if flag == chosen]
        if positions:
            for i, result in zip(positions, answer(positions), strict=True):
                results[i] = result
    return results
