import json
import logging
import sqlite3

import numpy as np
import pytest

import index.memory
from index import (
    INDEX_KINDS,
    EditMemory,
    EditNotFoundError,
    EditStore,
    EncoderMismatchError,
    MemoryClosedError,
    MemoryConfig,
    MemoryInUseError,
    NotAnEditMemoryError,
)

REBUILD_WARNING = "Rebuilding the vector index"


def rebuild_reasons(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if REBUILD_WARNING in record.getMessage()]


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_add_search_update_remove(kind, open_memory, unit_vectors, add_numbered):
    memory = open_memory(MemoryConfig(index_kind=kind, ivf_nlist=8))
    vectors = unit_vectors(500)
    ids = add_numbered(memory, vectors[:499])
    hamlet = memory.add("Who wrote Hamlet?", "Marlowe", vectors[499], {"case": 1})
    assert memory.count() == len(memory) == 500

    [[hit]] = memory.search(vectors[499], k=1)
    assert (hit.id, hit.prompt, hit.target, hit.metadata) == (hamlet, "Who wrote Hamlet?", "Marlowe", {"case": 1})
    assert [hits[0].id for hits in memory.search(vectors[:3], k=2)] == ids[:3]

    memory.update(hamlet, target="Shakespeare", vector=vectors[0])
    assert memory.get(hamlet).target == "Shakespeare"
    assert {hit.id for hit in memory.search(vectors[0], k=2)[0]} == {ids[0], hamlet}

    memory.remove(ids[0])
    assert [hit.id for hit in memory.search(vectors[0], k=1)[0]] == [hamlet]
    with pytest.raises(EditNotFoundError):
        memory.get(ids[0])
    with pytest.raises(EditNotFoundError):
        memory.remove(ids[0])
    assert len(memory.list()) == len(list(memory)) == 499


def test_scores_are_inner_products_and_short_results_are_not_padded(open_memory, unit_vectors):
    memory = open_memory()
    vectors = unit_vectors(2)
    memory.add_many(["a", "b"], ["a", "b"], vectors)
    hits = memory.search(vectors, k=5)
    assert [len(row) for row in hits] == [2, 2]
    assert hits[0][0].score == pytest.approx(1.0) and hits[0][1].score == pytest.approx(float(vectors[0] @ vectors[1]))


def test_clear_empties_the_memory(open_memory, unit_vectors, add_numbered):
    memory = open_memory()
    add_numbered(memory, unit_vectors(10))
    memory.clear()
    assert memory.count() == 0 and memory.search(unit_vectors(1), k=1) == [[]]
    memory.close()
    assert open_memory().count() == 0


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_edits_and_index_persist_across_reopen(kind, open_memory, unit_vectors, add_numbered, caplog):
    config = MemoryConfig(index_kind=kind, ivf_nlist=8)
    vectors = unit_vectors(400)
    with open_memory(config) as memory:
        ids = add_numbered(memory, vectors)
        memory.remove(ids[1])
    with caplog.at_level(logging.WARNING), open_memory(config) as memory:
        assert memory.count() == 399
        assert memory.search(vectors[2], k=1)[0][0].id == ids[2]
    assert rebuild_reasons(caplog) == []


def test_text_only_changes_do_not_force_a_rebuild(open_memory, unit_vectors, caplog):
    with open_memory() as memory:
        edit_id = memory.add("p", "t", unit_vectors(1)[0])
    with open_memory() as memory:
        memory.update(edit_id, prompt="changed", metadata={"k": "v"})
    with caplog.at_level(logging.WARNING), open_memory() as memory:
        assert memory.search(unit_vectors(1)[0])[0][0].prompt == "changed"
    assert rebuild_reasons(caplog) == []


def damage_deleted(path):
    (path / "vectors.faiss").unlink()


def damage_truncated(path):
    index_file = path / "vectors.faiss"
    index_file.write_bytes(index_file.read_bytes()[:-100])


def damage_corrupted(path):
    index_file = path / "vectors.faiss"
    content = bytearray(index_file.read_bytes())
    content[len(content) // 2 : len(content) // 2 + 64] = b"\xff" * 64
    index_file.write_bytes(bytes(content))


def damage_manifest_garbled(path):
    (path / "vectors.json").write_text("{not json")


def damage_store_changed_behind_its_back(path):
    with sqlite3.connect(path / "edits.sqlite") as outside:
        outside.execute("DELETE FROM edits WHERE id = 1")
    store = EditStore(path / "edits.sqlite", 16, "test-encoder")
    store.add("added behind its back", "t", np.ones(16, dtype=np.float32) / 4)
    store.close()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (damage_deleted, "vectors.faiss is missing"),
        (damage_truncated, "vectors.faiss is truncated or corrupt"),
        (damage_corrupted, "vectors.faiss is truncated or corrupt"),
        (damage_manifest_garbled, "vectors.json is not a valid index manifest"),
        (damage_store_changed_behind_its_back, "vectors.faiss is stale"),
    ],
)
def test_an_index_file_that_cannot_be_trusted_is_rebuilt_from_the_store(
    damage, reason, open_memory, memory_path, unit_vectors, add_numbered, caplog
):
    vectors = unit_vectors(300)
    with open_memory() as memory:
        add_numbered(memory, vectors)
    damage(memory_path)
    with caplog.at_level(logging.WARNING), open_memory() as memory:
        expected_ids = [edit.id for edit in memory.list()]
        for edit_id in expected_ids[:50]:
            edit = memory.get(edit_id)
            assert memory.search(vectors[int(edit.prompt.split()[1])], k=1)[0][0].id == edit_id
        if damage is damage_store_changed_behind_its_back:
            assert memory.search(np.ones(16) / 4, k=1)[0][0].prompt == "added behind its back"
    [message] = rebuild_reasons(caplog)
    assert reason in message
    # The rebuilt index was saved: the next open loads it.
    caplog.clear()
    with caplog.at_level(logging.WARNING), open_memory() as memory:
        assert [edit.id for edit in memory.list()] == expected_ids
    assert rebuild_reasons(caplog) == []


def test_a_change_of_index_kind_rebuilds(open_memory, unit_vectors, add_numbered, caplog):
    vectors = unit_vectors(100)
    with open_memory() as memory:
        add_numbered(memory, vectors)
    with caplog.at_level(logging.WARNING), open_memory(MemoryConfig(index_kind="hnsw")) as memory:
        assert memory.search(vectors[5], k=1)[0][0].prompt == "prompt 5"
    [message] = rebuild_reasons(caplog)
    assert "'index_kind': 'flat'" in message and "'index_kind': 'hnsw'" in message


def test_the_index_is_written_lazily(open_memory, memory_path, unit_vectors, add_numbered):
    memory = open_memory(MemoryConfig(flush_every=20))
    add_numbered(memory, unit_vectors(19))
    assert not (memory_path / "vectors.json").exists()
    memory.add("p", "t", unit_vectors(1)[0])
    assert json.loads((memory_path / "vectors.json").read_text())["count"] == 20
    memory.add("p", "t", unit_vectors(1)[0])
    memory.flush()
    assert json.loads((memory_path / "vectors.json").read_text())["count"] == 21


def test_a_large_memory_writes_its_index_after_a_tenth_of_its_size_in_changes(open_memory, memory_path, unit_vectors, add_numbered):
    memory = open_memory(MemoryConfig(flush_every=20))
    add_numbered(memory, unit_vectors(1000))  # written: 1000 changes
    memory.add_many(["p"] * 99, ["t"] * 99, unit_vectors(99, seed=1))  # 99 changes < 1099 // 10
    assert json.loads((memory_path / "vectors.json").read_text())["count"] == 1000
    memory.add_many(["p"] * 12, ["t"] * 12, unit_vectors(12, seed=2))  # 111 changes >= 1111 // 10
    assert json.loads((memory_path / "vectors.json").read_text())["count"] == 1111


def test_encoder_mismatch(open_memory):
    open_memory().close()
    with pytest.raises(EncoderMismatchError, match="'test-encoder' \\(dim 16\\).*'other-encoder'"):
        open_memory(encoder="other-encoder")
    with pytest.raises(EncoderMismatchError, match="dim 32"):
        open_memory(dim=32)


def test_open_existing(open_memory, memory_path, tmp_path, unit_vectors):
    with open_memory() as memory:
        edit_id = memory.add("p", "t", unit_vectors(1)[0])
    with EditMemory.open_existing(memory_path) as memory:
        assert (memory.dim, memory.encoder_name) == (16, "test-encoder")
        assert memory.get(edit_id).prompt == "p"
    with pytest.raises(NotAnEditMemoryError, match="has no edits.sqlite"):
        EditMemory.open_existing(tmp_path / "nowhere")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotAnEditMemoryError, match="a_file is a file"):
        EditMemory(tmp_path / "a_file", 16, "test-encoder")


def test_a_folder_is_open_in_one_memory_at_a_time(open_memory, unit_vectors):
    first = open_memory()
    with pytest.raises(MemoryInUseError, match="already open"):
        open_memory()
    first.close()
    first.close()
    with pytest.raises(MemoryClosedError):
        first.add("p", "t", unit_vectors(1)[0])
    open_memory().close()


def test_an_automatic_flush_that_fails_does_not_fail_the_add(open_memory, unit_vectors, monkeypatch, caplog):
    def disk_full(*args):
        raise OSError(28, "No space left on device")

    memory = open_memory(MemoryConfig(flush_every=1))
    monkeypatch.setattr(index.memory, "save_index_files", disk_full)
    with caplog.at_level(logging.WARNING):
        edit_id = memory.add("p", "t", unit_vectors(1)[0])
    assert memory.get(edit_id).prompt == "p"
    assert "Could not write the vector index" in caplog.text and "No space left" in caplog.text
    monkeypatch.undo()


def test_an_empty_batch_adds_nothing(open_memory):
    memory = open_memory()
    assert memory.add_many([], [], []) == []
    assert memory.count() == 0


def test_a_memory_folder_with_a_broken_store_is_refused_and_left_unlocked(open_memory, memory_path):
    memory_path.mkdir()
    (memory_path / "edits.sqlite").write_bytes(b"\x00garbage" * 512)
    with pytest.raises(NotAnEditMemoryError, match="edits.sqlite"):
        open_memory()
    (memory_path / "edits.sqlite").unlink()
    open_memory().close()


def test_flat_l2_hits_are_nearest_first_by_squared_distance(open_memory):
    memory = open_memory(MemoryConfig(index_kind="flat_l2"), dim=2)
    memory.add_many(["origin", "far"], ["a", "b"], [[0.0, 0.0], [3.0, 0.0]])
    hits = memory.search([1.0, 0.0], k=2)[0]
    assert [(hit.prompt, hit.score) for hit in hits] == [("origin", 1.0), ("far", 4.0)]


def test_copy_to_writes_a_memory_that_opens_without_a_rebuild(open_memory, tmp_path, unit_vectors, add_numbered, caplog):
    vectors = unit_vectors(50)
    memory = open_memory()
    ids = add_numbered(memory, vectors)
    memory.copy_to(tmp_path / "copy")
    with pytest.raises(NotAnEditMemoryError, match="already holds an edit memory"):
        memory.copy_to(tmp_path / "copy")
    with caplog.at_level(logging.WARNING), EditMemory.open_existing(tmp_path / "copy") as copy:
        assert [edit.id for edit in copy.list()] == ids
        assert copy.search(vectors[7], k=1)[0][0].id == ids[7]
    assert rebuild_reasons(caplog) == []
