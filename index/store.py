"""EditStore: the durable record of every edit, and the memory's source of truth.

One SQLite file. Each edit is a row holding its text, metadata and float32 vector, so
the FAISS index can always be rebuilt from this file alone.

Edit ids are INTEGER PRIMARY KEY AUTOINCREMENT: they are FAISS's int64 labels as they
are (no mapping table), and AUTOINCREMENT never hands out the id of a removed edit
again, so a stale index can never point at a different edit under an old id.

Durability: WAL journal with synchronous=FULL, so an id returned by add() survives
kill -9 and power loss (NORMAL may lose the last commits on power loss).

Thread safety: one connection shared by all threads behind a lock; SQLite work per call
is short, and the lock keeps a transaction from interleaving with another thread's.
"""

from __future__ import (
    annotations,  # the list() method shadows the builtin in annotations
)

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import (
    EditNotFoundError,
    EncoderMismatchError,
    InvalidEditError,
    MemoryClosedError,
    NotAnEditMemoryError,
)
from index.validation import (
    as_vector,
    as_vector_matrix,
    check_edit_id,
    check_positive_int,
    check_text,
    metadata_to_json,
)

SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL)",
    """CREATE TABLE IF NOT EXISTS edits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        prompt TEXT NOT NULL,
        target TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created REAL NOT NULL,
        vector BLOB NOT NULL
    )""",
    # COUNT(*) walks the smallest b-tree that holds every row: without this index that is the
    # table itself, vectors and all (52 ms a call at 10^5 edits, twice per routed query:
    # benchmarks/scale/route_profile.py); with it, a few pages of timestamps.
    "CREATE INDEX IF NOT EXISTS edits_created ON edits(created)",
    # Triggers, not Python code, move the generation: a write made by any program, even
    # a raw sqlite3 shell, makes an index file saved at an older generation stale.
    *(
        f"""CREATE TRIGGER IF NOT EXISTS edits_{event.lower()}_moves_generation AFTER {event} ON edits
            BEGIN UPDATE meta SET value = value + 1 WHERE key = 'generation'; END"""
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
)

_EDIT_COLUMNS = "id, prompt, target, metadata, created"
# SQLite caps the number of ? parameters in one statement; stay well below it.
_MAX_SQL_PARAMETERS = 900


@dataclass(frozen=True)
class Edit:
    """One stored edit (its vector stays in the store; see EditStore.iter_vectors)."""

    id: int
    prompt: str
    target: str
    metadata: dict[str, Any]
    created: float


@dataclass(frozen=True)
class StoreState:
    """What an index file must match to reflect the store: which store (a UUID made when the
    store is created, new for every copy), at which generation, holding which edits (a
    digest of their ids and creation times, cheap to compute in SQL)."""

    store_uuid: str
    generation: int
    count: int
    digest: str


@dataclass(frozen=True)
class StoreIdentity:
    """The encoder a store's vectors come from; vectors of another encoder are meaningless here."""

    encoder_name: str
    dim: int


def _edit_from_row(row: tuple) -> Edit:
    edit_id, prompt, target, metadata, created = row
    return Edit(id=edit_id, prompt=prompt, target=target, metadata=json.loads(metadata), created=created)


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    mode = "rwc" if create else "rw"
    try:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None, check_same_thread=False, timeout=30
        )
        # The first statement is what reads the file header, so a non-SQLite file fails here.
        connection.execute("PRAGMA journal_mode=WAL").fetchone()
    except sqlite3.DatabaseError as error:
        raise NotAnEditMemoryError(f"cannot open {path} as an edit store (SQLite: {error})") from error
    connection.execute("PRAGMA synchronous=FULL")
    return connection


def _generation(connection: sqlite3.Connection) -> int:
    """The store's generation, moved by the triggers on every change to the edits."""
    return connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]


def _damaged(path: Path, error: sqlite3.DatabaseError) -> NotAnEditMemoryError:
    return NotAnEditMemoryError(f"{path} is not a readable edit store, or is damaged (SQLite: {error})")


class EditStore:
    """Durable, thread-safe storage of edits and their vectors in one SQLite file."""

    def __init__(self, path: str | Path, dim: int, encoder_name: str, max_text_chars: int = 10_000) -> None:
        check_positive_int(dim, "dim")
        if not isinstance(encoder_name, str) or not encoder_name.strip():
            raise ValueError(f"encoder_name must be a non-empty str, got {encoder_name!r}")
        self.path = Path(path)
        self.dim = dim
        self.encoder_name = encoder_name
        self.max_text_chars = max_text_chars
        self._lock = threading.Lock()
        self._counted: tuple[int, int] | None = None  # (generation, edits) of the last COUNT(*)
        self._connection: sqlite3.Connection | None = _connect(self.path, create=True)
        try:
            self._create_or_check_identity()
        except sqlite3.DatabaseError as error:
            self.close()
            raise _damaged(self.path, error) from error
        except BaseException:
            self.close()
            raise

    @classmethod
    def identity_of(cls, path: str | Path) -> StoreIdentity:
        """Read which encoder and dimension an existing store was built with."""
        path = Path(path)
        if not path.is_file():
            raise NotAnEditMemoryError(f"{path} does not exist or is not a file, so it is not an edit store")
        connection = _connect(path, create=False)
        try:
            meta = dict(connection.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as error:
            raise NotAnEditMemoryError(f"{path} is not an edit store (SQLite: {error})") from error
        finally:
            connection.close()
        if "encoder_name" not in meta or "dim" not in meta:
            raise NotAnEditMemoryError(f"{path} is an SQLite file without edit store metadata")
        return StoreIdentity(encoder_name=meta["encoder_name"], dim=int(meta["dim"]))

    def _create_or_check_identity(self) -> None:
        with self._transaction() as connection:
            for statement in _SCHEMA:
                connection.execute(statement)
            meta = dict(connection.execute("SELECT key, value FROM meta"))
            if not meta:
                connection.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema_version", SCHEMA_VERSION),
                        ("encoder_name", self.encoder_name),
                        ("dim", self.dim),
                        ("generation", 0),
                        ("store_uuid", uuid.uuid4().hex),
                    ],
                )
                return
            if "store_uuid" not in meta:  # a store made before stores had one
                connection.execute("INSERT INTO meta (key, value) VALUES ('store_uuid', ?)", (uuid.uuid4().hex,))
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise NotAnEditMemoryError(
                f"{self.path} has store schema version {meta.get('schema_version')!r}; this code reads version {SCHEMA_VERSION}"
            )
        if meta["encoder_name"] != self.encoder_name or meta["dim"] != self.dim:
            raise EncoderMismatchError(
                f"{self.path} holds vectors of encoder {meta['encoder_name']!r} (dim {meta['dim']}), "
                f"but was opened for encoder {self.encoder_name!r} (dim {self.dim})"
            )

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise MemoryClosedError(f"the edit store {self.path} is closed")
        return self._connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front so it cannot fail half-way on a busy database."""
        with self._lock:
            connection = self._open_connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._open_connection()

    def _checked_text(self, value: Any, field: str) -> str:
        try:
            return check_text(value, field, self.max_text_chars)
        except (TypeError, ValueError) as error:
            raise InvalidEditError(str(error)) from None

    def add(self, prompt: str, target: str, vector: Any, metadata: dict[str, Any] | None = None) -> int:
        """Store one edit durably and return its id."""
        return self.add_many([prompt], [target], as_vector(vector, self.dim)[None, :], [metadata])[0]

    def add_many(
        self,
        prompts: Sequence[str],
        targets: Sequence[str],
        vectors: Any,
        metadata: Sequence[dict[str, Any] | None] | None = None,
    ) -> list[int]:
        """Store a batch of edits in one transaction (all or none) and return their ids in order.

        `vectors` has shape (len(prompts), dim); `metadata` is None or one dict/None per edit.
        """
        matrix = as_vector_matrix(vectors, self.dim)
        count = len(matrix)
        metadata = [None] * count if metadata is None else metadata
        for name, values in (("prompts", prompts), ("targets", targets), ("metadata", metadata)):
            if isinstance(values, (str, dict)) or len(values) != count:
                raise InvalidEditError(f"{name} must be a sequence with one entry per vector ({count})")
        created = time.time()
        rows = [
            (
                self._checked_text(prompt, f"prompts[{position}]"),
                self._checked_text(target, f"targets[{position}]"),
                metadata_to_json(edit_metadata),
                created,
                vector.tobytes(),
            )
            for position, (prompt, target, edit_metadata, vector) in enumerate(zip(prompts, targets, metadata, matrix))
        ]
        with self._transaction() as connection:
            # We hold the write lock, so the ids after the sequence's high-water mark are ours.
            (last_id,) = connection.execute("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'edits'), 0)").fetchone()
            ids = list(range(last_id + 1, last_id + 1 + count))
            before = _generation(connection)
            connection.executemany(
                "INSERT INTO edits (id, prompt, target, metadata, created, vector) VALUES (?, ?, ?, ?, ?, ?)",
                [(edit_id, *row) for edit_id, row in zip(ids, rows)],
            )
            counted = self._counted
        if counted is not None and counted[0] == before:  # the count was current: it grows by the batch
            self._counted = (before + count, counted[1] + count)
        return ids

    def remove(self, edit_id: int) -> None:
        """Delete one edit; EditNotFoundError if there is none with this id."""
        edit_id = check_edit_id(edit_id)
        with self._transaction() as connection:
            if connection.execute("DELETE FROM edits WHERE id = ?", (edit_id,)).rowcount == 0:
                raise EditNotFoundError(f"no edit with id {edit_id} in {self.path}")

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
        edit_id = check_edit_id(edit_id)
        changes: dict[str, Any] = {}
        if prompt is not None:
            changes["prompt"] = self._checked_text(prompt, "prompt")
        if target is not None:
            changes["target"] = self._checked_text(target, "target")
        if vector is not None:
            changes["vector"] = as_vector(vector, self.dim).tobytes()
        if metadata is not None:
            changes["metadata"] = metadata_to_json(metadata)
        if not changes:
            raise InvalidEditError("update needs at least one of prompt, target, vector, metadata")
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self._transaction() as connection:
            cursor = connection.execute(f"UPDATE edits SET {assignments} WHERE id = ?", (*changes.values(), edit_id))
            if cursor.rowcount == 0:
                raise EditNotFoundError(f"no edit with id {edit_id} in {self.path}")

    def get(self, edit_id: int) -> Edit:
        """The edit with this id; EditNotFoundError if there is none."""
        edit_id = check_edit_id(edit_id)
        with self._reading() as connection:
            row = connection.execute(f"SELECT {_EDIT_COLUMNS} FROM edits WHERE id = ?", (edit_id,)).fetchone()
        if row is None:
            raise EditNotFoundError(f"no edit with id {edit_id} in {self.path}")
        return _edit_from_row(row)

    def get_many(self, edit_ids: Sequence[int]) -> dict[int, Edit]:
        """The edits with these ids, by id; ids with no edit are left out."""
        return {row[0]: _edit_from_row(row) for row in self._rows_with_ids(_EDIT_COLUMNS, edit_ids)}

    def vectors_of(self, edit_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The float32 vectors of the edits with these ids, by id; ids with no edit are left out."""
        return {edit_id: np.frombuffer(blob, dtype=np.float32) for edit_id, blob in self._rows_with_ids("id, vector", edit_ids)}

    def _rows_with_ids(self, columns: str, edit_ids: Sequence[int]) -> list[tuple]:
        """`columns` (the first of them `id`) of the edits with these ids, in chunks SQLite accepts."""
        unique_ids = sorted({check_edit_id(edit_id) for edit_id in edit_ids})
        rows: list[tuple] = []
        with self._reading() as connection:
            for start in range(0, len(unique_ids), _MAX_SQL_PARAMETERS):
                chunk = unique_ids[start : start + _MAX_SQL_PARAMETERS]
                placeholders = ", ".join("?" * len(chunk))
                rows += connection.execute(f"SELECT {columns} FROM edits WHERE id IN ({placeholders})", chunk).fetchall()
        return rows

    def list(self) -> list[Edit]:
        """Every edit, oldest first."""
        with self._reading() as connection:
            rows = connection.execute(f"SELECT {_EDIT_COLUMNS} FROM edits ORDER BY id").fetchall()
        return [_edit_from_row(row) for row in rows]

    def __iter__(self) -> Iterator[Edit]:
        return iter(self.list())

    def count(self) -> int:
        """The number of edits. COUNT(*) walks an index entry per edit (milliseconds at 10^6, and a
        routed query asks twice), so the count is kept with the generation it was taken at and
        reused while the generation has not moved; triggers move it on every change, whoever
        writes, so a write by another connection is never missed."""
        with self._reading() as connection:
            connection.execute("BEGIN")  # one snapshot for the generation and the count
            try:
                generation = _generation(connection)
                if self._counted is None or self._counted[0] != generation:
                    self._counted = (generation, connection.execute("SELECT COUNT(*) FROM edits").fetchone()[0])
            finally:
                connection.execute("COMMIT")
            return self._counted[1]

    def __len__(self) -> int:
        return self.count()

    def clear(self) -> None:
        """Remove every edit. Ids already handed out are still never reused."""
        with self._transaction() as connection:
            connection.execute("DELETE FROM edits")

    def state(self) -> StoreState:
        """The store's UUID, generation, edit count and digest of its edits (see StoreState)."""
        with self._reading() as connection:
            (store_uuid,) = connection.execute("SELECT value FROM meta WHERE key = 'store_uuid'").fetchone()
            generation = _generation(connection)
            count, id_sum, created_sum, weighted = connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(id), 0), TOTAL(created), TOTAL(created * (id % 65521)) FROM edits"
            ).fetchone()
        return StoreState(store_uuid, generation, count, f"{id_sum}:{created_sum!r}:{weighted!r}")

    def generation(self) -> int:
        """A counter moved by every change to the edits; an index saved at another value is stale."""
        with self._reading() as connection:
            return _generation(connection)

    def iter_vectors(self, batch_size: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids int64 (n,), vectors float32 (n, dim)) batches in id order, to rebuild an index."""
        last_id = 0
        while True:
            with self._reading() as connection:
                rows = connection.execute(
                    "SELECT id, vector FROM edits WHERE id > ? ORDER BY id LIMIT ?", (last_id, batch_size)
                ).fetchall()
            if not rows:
                return
            ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(len(rows), self.dim)
            yield ids, vectors
            last_id = int(ids[-1])

    def backup_to(self, path: str | Path) -> None:
        """A consistent copy of the whole database at `path` (SQLite's online backup: safe while
        others write). The copy is another store: it gets a UUID of its own."""
        with self._reading() as connection:
            target = sqlite3.connect(path)
            try:
                connection.backup(target)
                with target:
                    target.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('store_uuid', ?)", (uuid.uuid4().hex,))
            finally:
                target.close()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
