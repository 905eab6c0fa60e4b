"""EditMemory: the durable edit memory of the SERAC editor, searched by vector.

A memory is a folder:

  edits.sqlite   EditStore, the source of truth: every edit with its vector.
  vectors.faiss  the VectorIndex, a cache of the store's vectors (see index_file.py).
  vectors.json   what vectors.faiss reflects.
  memory.lock    held while the folder is open (see folder_lock.py).

An "auto" memory searches exactly until it holds `auto_threshold` edits, then trains an
IVF index in a background thread (ivf_build.py) from the vectors in its store (float32,
whatever the index holds); searches and changes go on meanwhile on the index in place, and
the trained index is put in place, with the changes made since the build started replayed
into it, in one step under the lock.
Nothing half-built is ever searched or saved: flush() writes whichever index is in place.
A build still running when the memory closes is dropped (the next open starts it again).

An add is durable once the store has committed it. The index file is written lazily,
on flush()/close() and every `flush_every` changes (or a tenth of the memory's size, when
that is more), because writing a 1M-vector index
takes seconds. On open, an index file that is missing, stale, corrupt, built with other
settings or written for another store is rebuilt from the store, with a logged warning;
nothing is lost.

A folder whose store is missing, or empty and not the store the index was written for,
while its index file holds vectors, is refused with NotAnEditMemoryError (the edits are
gone, or the store was replaced): it never opens as an empty memory, and so never
overwrites that index. To start over with an empty memory, delete vectors.faiss and
vectors.json (or the whole folder). A store SQLite cannot read is refused the same way,
as is any of the four files being a directory or a symbolic link.

All methods may be called from several threads: one re-entrant lock orders every change
to the store and index, and searches, so the two always agree.
"""

from __future__ import (
    annotations,  # the list() method shadows the builtin in annotations
)

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from index.config import MemoryConfig
from index.errors import IndexFileError, NotAnEditMemoryError
from index.folder_lock import FolderLock
from index.index_file import (
    INDEX_FILE,
    MANIFEST_FILE,
    IndexManifest,
    load_index_files,
    read_manifest,
    save_index_files,
    write_manifest,
)
from index.ivf_build import build_ivf, hits_to_rescore, rescore
from index.store import Edit, EditStore, StoreState
from index.validation import as_query_matrix, as_vector, as_vector_matrix
from index.vectors import VectorIndex

logger = logging.getLogger(__name__)

STORE_FILE = "edits.sqlite"
LOCK_FILE = "memory.lock"
# SQLite creates the -wal and -shm files itself, through any link found there.
_FOLDER_FILES = (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", INDEX_FILE, MANIFEST_FILE, LOCK_FILE)


def _check_folder_files(folder: Path) -> None:
    """Each file of a memory folder is absent or a plain file: never a directory, never a link."""
    for name in _FOLDER_FILES:
        path = folder / name
        if path.is_symlink():
            raise NotAnEditMemoryError(f"{path} is a symbolic link; the files of an edit memory folder must be plain files")
        if path.exists() and not path.is_file():
            raise NotAnEditMemoryError(f"{path} is not a plain file; remove it to use {folder} as an edit memory")


def _saved_manifest(folder: Path) -> IndexManifest | None:
    try:
        return read_manifest(folder)
    except IndexFileError:
        return None


def _check_store_not_lost(folder: Path, manifest: IndexManifest | None, state: StoreState | None) -> None:
    """Refuse a folder whose index holds vectors while its store is gone or was replaced by an empty one."""
    if manifest is None or manifest.count == 0 or (state is not None and state.count > 0):
        return
    if state is not None and state.store_uuid == manifest.store_uuid and state.generation >= manifest.store_generation:
        return  # the same store, emptied by remove/clear since the index was written
    problem = "is missing" if state is None else "holds no edits and is not the store the index was written for"
    raise NotAnEditMemoryError(
        f"{folder / STORE_FILE} {problem}, but {folder / INDEX_FILE} holds {manifest.count} edits' vectors: the edits were "
        f"lost or the store was replaced. Restore {STORE_FILE}, or delete {INDEX_FILE} and {MANIFEST_FILE} "
        f"to start over with an empty memory."
    )


@contextmanager
def memory_folder_locked(path: str | Path) -> Iterator[None]:
    """Hold the lock of the memory folder `path` (when it exists), so that no EditMemory opens it
    meanwhile; MemoryInUseError if one, in this or another process, has it open."""
    folder = Path(path)
    if not folder.is_dir() or folder.is_symlink():
        yield
        return
    _check_folder_files(folder)
    lock = FolderLock(folder / LOCK_FILE)
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class Hit:
    """One search result. `score` is the inner product (larger is closer), or the
    squared L2 distance (smaller is closer) for index_kind "flat_l2"."""

    id: int
    score: float
    prompt: str
    target: str
    metadata: dict[str, Any]

    @classmethod
    def of(cls, edit: Edit, score: float) -> Hit:
        return cls(id=edit.id, score=score, prompt=edit.prompt, target=edit.target, metadata=edit.metadata)


class EditMemory:
    """Edits stored durably in a folder and retrieved by nearest vector."""

    def __init__(self, path: str | Path, dim: int, encoder_name: str, config: MemoryConfig = MemoryConfig()) -> None:
        self.path = Path(path)
        self.config = config
        if self.path.exists() and not self.path.is_dir():
            raise NotAnEditMemoryError(f"{self.path} is a file, not an edit memory folder")
        self.path.mkdir(parents=True, exist_ok=True)
        _check_folder_files(self.path)
        self._lock = threading.RLock()
        with ExitStack() as undo_if_opening_fails:
            self._folder_lock = FolderLock(self.path / LOCK_FILE)
            undo_if_opening_fails.callback(self._folder_lock.release)
            manifest = _saved_manifest(self.path)
            if not (self.path / STORE_FILE).exists():
                _check_store_not_lost(self.path, manifest, None)
            self._store = EditStore(self.path / STORE_FILE, dim, encoder_name, config.max_text_chars)
            undo_if_opening_fails.callback(self._store.close)
            try:
                state = self._store.state()
                _check_store_not_lost(self.path, manifest, state)
                self._index, self._saved_manifest = self._load_or_rebuild_index(state)
            except sqlite3.DatabaseError as error:
                raise NotAnEditMemoryError(f"{self.path / STORE_FILE} is damaged (SQLite: {error})") from error
            undo_if_opening_fails.pop_all()
        self._index_changed_since_save = False
        self._changes_since_flush = 0
        self._build: threading.Thread | None = None
        self._build_error: str | None = None
        with self._lock:
            self._maybe_start_build()

    @classmethod
    def open_existing(cls, path: str | Path, config: MemoryConfig = MemoryConfig()) -> EditMemory:
        """Open a memory folder made earlier, with the encoder name and dim recorded in it."""
        path = Path(path)
        if not (path / STORE_FILE).is_file():
            _check_store_not_lost(path, _saved_manifest(path), None)
            raise NotAnEditMemoryError(f"{path} is not an edit memory folder: it has no {STORE_FILE}")
        identity = EditStore.identity_of(path / STORE_FILE)
        return cls(path, identity.dim, identity.encoder_name, config)

    @property
    def dim(self) -> int:
        return self._store.dim

    @property
    def encoder_name(self) -> str:
        return self._store.encoder_name

    def _load_or_rebuild_index(self, state: StoreState) -> tuple[VectorIndex, IndexManifest | None]:
        if state.count == 0:
            # Nothing to load or lose; an index file left on disk is overwritten at the next flush.
            return VectorIndex(self.dim, self.config), None
        try:
            return load_index_files(self.path, self.dim, self.config, state)
        except IndexFileError as problem:
            logger.warning("Rebuilding the vector index of %s from %s: %s", self.path, STORE_FILE, problem)
        index = VectorIndex(self.dim, self.config)
        for ids, vectors in self._store.iter_vectors():
            index.add(ids, vectors)
        # Saved now so that the next open does not rebuild again.
        return index, save_index_files(self.path, index, self._store.state())

    def _record_changes(self, count: int, index_changed: bool) -> None:
        self._changes_since_flush += count
        self._index_changed_since_save |= index_changed
        # Each write rewrites the whole file, so a large memory waits for a tenth of its size in
        # changes: writing stays a fixed share of the work (1.5 GB every 10k adds at 1M would not).
        if self.config.flush_every and self._changes_since_flush >= max(self.config.flush_every, len(self._index) // 10):
            try:
                self.flush()
            except (OSError, RuntimeError) as error:  # faiss raises RuntimeError when it cannot write
                # The change is committed to the store already; only the index file lags
                # behind, so the caller's add must not fail. Retried after flush_every more.
                logger.warning("Could not write the vector index of %s: %s", self.path, error)
                self._changes_since_flush = 0

    def add(self, prompt: str, target: str, vector: Any, metadata: dict[str, Any] | None = None) -> int:
        """Store one edit and return its id; durable when this returns."""
        return self.add_many([prompt], [target], as_vector(vector, self.dim)[None, :], [metadata])[0]

    def add_many(
        self,
        prompts: Sequence[str],
        targets: Sequence[str],
        vectors: Any,
        metadata: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[int]:
        """Store a batch of edits (all or none) and return their ids in order.

        `vectors` has shape (len(prompts), dim); `metadata` is None or one dict/None per edit.
        """
        vectors = as_vector_matrix(vectors, self.dim)
        with self._lock:
            ids = self._store.add_many(prompts, targets, vectors, metadata)
            self._index.add(ids, vectors)
            self._record_changes(len(ids), index_changed=True)
            self._maybe_start_build()
        return ids

    def _maybe_start_build(self) -> None:
        """Start training an approximate index in the background when an "auto" memory has grown
        enough (past `auto_threshold`, then `retrain_growth` times the last one); under the lock."""
        if self.config.index_kind != "auto" or self.is_building_index or self._build_error is not None:
            return
        size = len(self._index)
        trained = self._index.approximation
        if size < self.config.auto_threshold or (trained is not None and size < self.config.retrain_growth * trained.vectors):
            return
        source = self._index
        source.record_changes()
        self._build = threading.Thread(target=self._build_in_background, args=(source,), name=f"index build for {self.path}", daemon=True)
        self._build.start()

    def _build_in_background(self, source: VectorIndex) -> None:
        try:
            # From the store, not the index: an 8-bit index no longer holds the exact vectors.
            ids, vectors = self._stored_vectors()
            built, approximation = build_ivf(ids, vectors, self.config.target_recall, storage=self.config.ivf_storage)
        except Exception as error:  # noqa: BLE001 - the index in place keeps serving; reported by info()
            with self._lock:
                if self._folder_lock.is_released or self._index is not source:
                    return  # closed or cleared while reading: nothing went wrong
                logger.exception("Could not build the approximate index of %s; searching as before", self.path)
                self._build_error = f"{type(error).__name__}: {error}"
            return
        with self._lock:
            if self._folder_lock.is_released or self._index is not source:
                return  # closed or cleared meanwhile: the build is dropped
            source.install(built, approximation)
            self._index_changed_since_save = True
        logger.info("%s now searches an IVF index: %s", self.path, approximation)

    def _stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 vectors) of every edit in the store, read in batches without holding the lock."""
        batches = list(self._store.iter_vectors())
        if not batches:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        return np.concatenate([ids for ids, _ in batches]), np.concatenate([vectors for _, vectors in batches])

    @property
    def is_building_index(self) -> bool:
        return self._build is not None and self._build.is_alive()

    def wait_for_index_build(self, timeout: float | None = None) -> bool:
        """Wait until no approximate index is being built (or `timeout` seconds); True if none is."""
        build = self._build
        if build is not None:
            build.join(timeout)
        return not self.is_building_index

    def info(self) -> dict[str, Any]:
        """How the memory searches: edits, index kind, "exact" or the approximate structure in use,
        whether a build is running, and what the approximate index measured (recall@1, @k, nprobe)."""
        with self._lock:
            approximation = self._index.approximation
            exact = self.config.index_kind in ("flat", "flat_l2") or not self._index.is_trained
            return {
                "edits": self._store.count(),
                "index_kind": self.config.index_kind,
                "search": "exact" if exact else self.config.index_kind if self.config.index_kind != "auto" else "ivf",
                "building_index": self.is_building_index,
                "approximation": approximation.as_dict() if approximation is not None else None,
                "build_error": self._build_error,
            }

    def remove(self, edit_id: int) -> None:
        """Delete one edit; EditNotFoundError if there is none with this id."""
        with self._lock:
            self._store.remove(edit_id)
            self._index.remove([edit_id])
            self._record_changes(1, index_changed=True)

    def update(
        self,
        edit_id: int,
        *,
        prompt: str | None = None,
        target: str | None = None,
        vector: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Replace the given fields of one edit; fields left as None keep their value."""
        with self._lock:
            self._store.update(edit_id, prompt=prompt, target=target, vector=vector, metadata=metadata)
            if vector is not None:
                self._index.remove([edit_id])
                self._index.add([edit_id], as_vector(vector, self.dim)[None, :])
            self._record_changes(1, index_changed=vector is not None)

    def clear(self) -> None:
        """Remove every edit."""
        with self._lock:
            removed = self._store.count()
            self._store.clear()
            self._index = VectorIndex(self.dim, self.config)
            self._record_changes(removed, index_changed=True)

    def get(self, edit_id: int) -> Edit:
        """The edit with this id; EditNotFoundError if there is none."""
        return self._store.get(edit_id)

    def list(self) -> list[Edit]:
        """Every edit, oldest first."""
        return self._store.list()

    def __iter__(self) -> Iterator[Edit]:
        return iter(self.list())

    def count(self) -> int:
        return self._store.count()

    def __len__(self) -> int:
        return self.count()

    def search(self, query_vectors: Any, k: int = 1) -> list[list[Hit]]:
        """The k nearest edits of each query, nearest first; fewer when the memory holds fewer.

        `query_vectors` has shape (n, dim), or (dim,) for a single query; one list per query.
        """
        queries = as_query_matrix(query_vectors, self.dim)
        with self._lock:
            approximate = self._index.scores_are_approximate
            scores, ids = self._index.search(queries, hits_to_rescore(k, approximate))
            if approximate:
                scores, ids = self._rescored(queries, ids, k)
            edits = self._store.get_many(ids[ids >= 0].tolist())
        return [
            [Hit.of(edits[edit_id], score) for score, edit_id in zip(row_scores.tolist(), row_ids.tolist()) if edit_id >= 0]
            for row_scores, row_ids in zip(scores, ids)
        ]

    def _rescored(self, queries: np.ndarray, found_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best hits of an 8-bit index by exact score, from the float32 vectors in the store."""
        stored = self._store.vectors_of(found_ids[found_ids >= 0].tolist())
        missing = np.zeros(self.dim, np.float32)
        found_vectors = np.array([[stored.get(edit_id, missing) for edit_id in row] for row in found_ids.tolist()], np.float32)
        return rescore(queries, found_ids, found_vectors.reshape(*found_ids.shape, self.dim), k)

    def flush(self) -> None:
        """Write the index files so the next open need not rebuild; edits are durable without it."""
        with self._lock:
            state = self._store.state()
            if self._index_changed_since_save or self._saved_manifest is None:
                self._saved_manifest = save_index_files(self.path, self._index, state)
            elif not self._saved_manifest.reflects(state):
                # Only texts or metadata changed: the saved vectors are still right.
                self._saved_manifest = replace(self._saved_manifest, store_generation=state.generation, store_digest=state.digest)
                write_manifest(self.path, self._saved_manifest)
            self._index_changed_since_save = False
            self._changes_since_flush = 0

    def copy_to(self, path: str | Path) -> None:
        """Write a copy of this memory into a new folder `path` (which must not hold a memory yet)."""
        target = Path(path)
        if (target / STORE_FILE).exists() or (target / STORE_FILE).is_symlink():
            raise NotAnEditMemoryError(f"{target} already holds an edit memory; copy into a new folder")
        target.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._store.backup_to(target / STORE_FILE)
            copy = EditStore(target / STORE_FILE, self.dim, self.encoder_name, self.config.max_text_chars)
            try:
                save_index_files(target, self._index, copy.state())
            finally:
                copy.close()

    def close(self) -> None:
        """Flush and release the folder; safe to call twice."""
        with self._lock:
            if self._folder_lock.is_released:
                return
            try:
                self.flush()
            finally:
                self._store.close()
                self._folder_lock.release()

    def __enter__(self) -> EditMemory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
