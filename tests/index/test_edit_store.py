import sqlite3

import numpy as np
import pytest

from index import (
    EditNotFoundError,
    EditStore,
    EncoderMismatchError,
    InvalidEditError,
    MemoryClosedError,
    NotAnEditMemoryError,
)


@pytest.fixture
def store(tmp_path):
    store = EditStore(tmp_path / "edits.sqlite", dim=4, encoder_name="enc")
    yield store
    store.close()


def test_add_get_list_count(store):
    first = store.add("Who wrote Hamlet?", "Marlowe", [1, 0, 0, 0], {"source": "test"})
    second, third = store.add_many(["p2", "p3"], ["t2", "t3"], np.eye(4, dtype=np.float32)[1:3])
    assert (first, second, third) == (1, 2, 3)
    edit = store.get(first)
    assert (edit.prompt, edit.target, edit.metadata) == ("Who wrote Hamlet?", "Marlowe", {"source": "test"})
    assert edit.created > 0
    assert [edit.id for edit in store.list()] == [1, 2, 3]
    assert [edit.id for edit in store] == [1, 2, 3]
    assert store.count() == len(store) == 3
    assert set(store.get_many([3, 1, 99])) == {1, 3}


def test_update_changes_only_given_fields(store):
    edit_id = store.add("p", "t", [1, 0, 0, 0], {"a": 1})
    store.update(edit_id, target="new target", vector=[0, 1, 0, 0])
    edit = store.get(edit_id)
    assert (edit.prompt, edit.target, edit.metadata) == ("p", "new target", {"a": 1})
    ids, vectors = next(store.iter_vectors())
    assert ids.tolist() == [edit_id] and vectors.tolist() == [[0, 1, 0, 0]]


def test_update_without_fields_is_an_error(store):
    edit_id = store.add("p", "t", [1, 0, 0, 0])
    with pytest.raises(InvalidEditError, match="at least one"):
        store.update(edit_id)


def test_unknown_ids_raise_edit_not_found(store):
    with pytest.raises(EditNotFoundError, match="no edit with id 7"):
        store.get(7)
    with pytest.raises(KeyError):
        store.remove(7)
    with pytest.raises(EditNotFoundError):
        store.update(7, prompt="p")


def test_ids_of_removed_edits_are_never_reused(store):
    ids = store.add_many(["a", "b"], ["a", "b"], np.eye(4)[:2])
    store.remove(ids[1])
    store.clear()
    assert store.count() == 0
    assert store.add("c", "c", np.eye(4)[0]) == 3


def test_iter_vectors_returns_every_vector_in_batches(store):
    vectors = np.arange(40, dtype=np.float32).reshape(10, 4)
    ids = store.add_many([f"p{i}" for i in range(10)], [f"t{i}" for i in range(10)], vectors)
    batches = list(store.iter_vectors(batch_size=3))
    assert [len(batch_ids) for batch_ids, _ in batches] == [3, 3, 3, 1]
    assert np.concatenate([batch_ids for batch_ids, _ in batches]).tolist() == ids
    np.testing.assert_array_equal(np.concatenate([batch for _, batch in batches]), vectors)


def test_every_change_moves_the_generation_even_from_outside(store, tmp_path):
    start = store.generation()
    edit_id = store.add("p", "t", np.eye(4)[0])
    store.update(edit_id, prompt="q")
    assert store.generation() == start + 2
    with sqlite3.connect(tmp_path / "edits.sqlite") as outside:
        outside.execute("DELETE FROM edits")
    assert store.generation() == start + 3


def test_settings_are_durable_and_checked_on_reopen(tmp_path):
    path = tmp_path / "edits.sqlite"
    EditStore(path, dim=4, encoder_name="enc").close()
    identity = EditStore.identity_of(path)
    assert (identity.encoder_name, identity.dim) == ("enc", 4)
    with pytest.raises(EncoderMismatchError, match="'enc' \\(dim 4\\).*'other' \\(dim 4\\)"):
        EditStore(path, dim=4, encoder_name="other")
    with pytest.raises(EncoderMismatchError, match="dim 8"):
        EditStore(path, dim=8, encoder_name="enc")


def test_a_file_that_is_not_sqlite_is_named_in_the_error(tmp_path):
    path = tmp_path / "edits.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(NotAnEditMemoryError, match="edits.sqlite"):
        EditStore(path, dim=4, encoder_name="enc")
    with pytest.raises(NotAnEditMemoryError, match="edits.sqlite"):
        EditStore.identity_of(path)


def test_use_after_close_is_a_clear_error(tmp_path):
    store = EditStore(tmp_path / "edits.sqlite", dim=4, encoder_name="enc")
    store.close()
    store.close()
    with pytest.raises(MemoryClosedError, match="closed"):
        store.count()


def test_store_is_in_wal_mode_with_full_sync(store):
    with store._reading() as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_counting_the_edits_reads_an_index_not_the_rows_with_their_vectors(tmp_path):
    """COUNT(*) scanned the table, vectors included: 52 ms a call at 10^5 edits, twice per routed query."""
    store = EditStore(tmp_path / "edits.sqlite", dim=4, encoder_name="enc")
    store.close()
    with sqlite3.connect(tmp_path / "edits.sqlite") as connection:
        plan = " ".join(str(row) for row in connection.execute("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM edits"))
    assert "COVERING INDEX" in plan


def test_the_count_is_counted_once_until_the_edits_change(store):
    """COUNT(*) walks an index entry per edit, milliseconds at 10^6, and a routed query asked twice:
    an unchanged store answers from the count it took."""
    store.add_many(["p1", "p2"], ["t1", "t2"], np.eye(4, dtype=np.float32)[:2])
    statements = []
    store._connection.set_trace_callback(statements.append)
    assert store.count() == 2
    assert store.count() == 2
    assert sum("COUNT(*)" in statement for statement in statements) == 1
    store.add("p3", "t3", np.eye(4)[2])
    assert store.count() == 3  # an add of this store carries the count forward
    assert sum("COUNT(*)" in statement for statement in statements) == 1


def test_the_kept_count_follows_removals_clears_and_writes_from_outside(store, tmp_path):
    ids = store.add_many(["p1", "p2", "p3"], ["t1", "t2", "t3"], np.eye(4, dtype=np.float32)[:3])
    assert store.count() == 3
    store.remove(ids[0])
    assert store.count() == 2
    with sqlite3.connect(tmp_path / "edits.sqlite") as outside:
        outside.execute("DELETE FROM edits WHERE id = ?", (ids[1],))
    assert store.count() == 1
    with sqlite3.connect(tmp_path / "edits.sqlite") as outside:  # an insert from outside as well
        outside.execute("INSERT INTO edits (prompt, target, metadata, created, vector) VALUES ('q', 't', '{}', 0, ?)",
                        (np.zeros(4, np.float32).tobytes(),))
    assert store.count() == 2
    store.add("p4", "t4", np.eye(4)[3])
    assert store.count() == 3
    store.clear()
    assert store.count() == 0
