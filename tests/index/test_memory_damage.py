"""A damaged or tampered memory folder is refused with our error naming the file, or its
index is rebuilt from the store; it never opens as an empty memory, and no write follows a link."""

import os
import shutil

import pytest

from index import (
    EditMemory,
    EditNotFoundError,
    InvalidEditError,
    MemoryInUseError,
    NotAnEditMemoryError,
    memory_folder_locked,
)


def test_a_missing_store_beside_a_full_index_is_refused_and_the_index_survives(open_memory, memory_path, unit_vectors, add_numbered):
    memory = open_memory()
    add_numbered(memory, unit_vectors(5))
    memory.close()
    index_bytes = (memory_path / "vectors.faiss").read_bytes()
    (memory_path / "edits.sqlite").unlink()
    with pytest.raises(NotAnEditMemoryError, match=r"edits\.sqlite is missing.*holds 5 edits.*delete vectors\.faiss"):
        open_memory()
    assert not (memory_path / "edits.sqlite").exists()
    assert (memory_path / "vectors.faiss").read_bytes() == index_bytes


@pytest.mark.parametrize("emptied", ["truncated", "replaced"])
def test_an_empty_store_beside_a_full_index_is_refused(open_memory, memory_path, unit_vectors, add_numbered, emptied):
    memory = open_memory()
    add_numbered(memory, unit_vectors(5))
    memory.close()
    if emptied == "truncated":
        (memory_path / "edits.sqlite").write_bytes(b"")
        for leftover in ("edits.sqlite-wal", "edits.sqlite-shm"):
            (memory_path / leftover).unlink(missing_ok=True)
    else:
        other = memory_path.parent / "other"
        EditMemory(other, 16, "test-encoder").close()
        shutil.copy(other / "edits.sqlite", memory_path / "edits.sqlite")
    with pytest.raises(NotAnEditMemoryError, match="holds no edits and is not the store"):
        open_memory()


def test_starting_over_as_the_error_says_gives_an_empty_memory(open_memory, memory_path, unit_vectors, add_numbered):
    memory = open_memory()
    add_numbered(memory, unit_vectors(5))
    memory.close()
    (memory_path / "edits.sqlite").unlink()
    (memory_path / "vectors.faiss").unlink()
    (memory_path / "vectors.json").unlink()
    assert len(open_memory()) == 0


def test_a_memory_emptied_by_clear_reopens_empty(open_memory, unit_vectors, add_numbered):
    memory = open_memory()
    add_numbered(memory, unit_vectors(5))
    memory.flush()
    memory.clear()
    memory._folder_lock.release()  # as if killed before close(): the index file still says 5
    memory._store.close()
    assert len(open_memory()) == 0


def test_an_index_swapped_in_from_another_memory_of_the_same_size_is_rebuilt(tmp_path, unit_vectors, add_numbered):
    with EditMemory(tmp_path / "a", 16, "test-encoder") as first, EditMemory(tmp_path / "b", 16, "test-encoder") as second:
        add_numbered(first, unit_vectors(20, seed=1))
        add_numbered(second, unit_vectors(20, seed=2))
    for name in ("vectors.faiss", "vectors.json"):
        shutil.copy(tmp_path / "b" / name, tmp_path / "a" / name)
    with EditMemory(tmp_path / "a", 16, "test-encoder") as memory:
        found = [memory.search(vector, k=1)[0][0].id for vector in unit_vectors(20, seed=1)]
    assert found == list(range(1, 21))


def test_a_copy_is_another_store(open_memory, tmp_path, unit_vectors, add_numbered):
    memory = open_memory()
    add_numbered(memory, unit_vectors(3))
    memory.copy_to(tmp_path / "copy")
    assert memory._store.state().store_uuid != EditMemory.open_existing(tmp_path / "copy")._store.state().store_uuid


@pytest.mark.parametrize("name", ["vectors.faiss", "vectors.json", "memory.lock", "edits.sqlite"])
def test_a_folder_file_that_is_a_directory_is_refused(open_memory, memory_path, unit_vectors, add_numbered, name):
    memory = open_memory()
    add_numbered(memory, unit_vectors(3))
    memory.close()
    (memory_path / name).unlink()
    (memory_path / name).mkdir()
    with pytest.raises(NotAnEditMemoryError, match=f"{name} is not a plain file"):
        open_memory()


@pytest.mark.parametrize("name", ["vectors.faiss", "vectors.json", "memory.lock", "edits.sqlite-wal"])
def test_a_folder_file_that_is_a_link_is_refused_and_its_target_untouched(open_memory, memory_path, tmp_path, unit_vectors, add_numbered, name):
    memory = open_memory()
    add_numbered(memory, unit_vectors(3))
    memory.close()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (memory_path / name).unlink(missing_ok=True)
    (memory_path / name).symlink_to(victim)
    with pytest.raises(NotAnEditMemoryError, match="symbolic link"):
        open_memory()
    assert victim.read_text() == "precious"


def test_planted_links_at_the_old_temporary_names_are_never_followed(open_memory, memory_path, tmp_path, unit_vectors, add_numbered):
    memory = open_memory()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("vectors.faiss.partial", "vectors.json.partial", ".vectors.faiss.partial"):
        (memory_path / name).symlink_to(victim)
    add_numbered(memory, unit_vectors(3))
    memory.close()
    assert victim.read_text() == "precious"
    assert len(EditMemory.open_existing(memory_path)) == 3


def test_garbage_in_the_store_is_our_error(memory_path):
    memory_path.mkdir()
    (memory_path / "edits.sqlite").write_bytes(os.urandom(8192))
    with pytest.raises(NotAnEditMemoryError, match=r"edits\.sqlite"):
        EditMemory(memory_path, 16, "test-encoder")


def test_lone_surrogates_are_refused_and_nothing_is_stored(open_memory, unit_vectors):
    memory = open_memory()
    with pytest.raises(InvalidEditError, match="lone surrogate"):
        memory.add_many(["fine", "bad \udc80 text"], ["a", "b"], unit_vectors(2))
    assert len(memory) == 0


@pytest.mark.parametrize("edit_id", [2**70, -1, 2**63])
def test_ids_no_edit_can_have_are_not_found(open_memory, edit_id):
    memory = open_memory()
    with pytest.raises(EditNotFoundError):
        memory.remove(edit_id)
    with pytest.raises(EditNotFoundError):
        memory.get(edit_id)


def test_a_folder_open_elsewhere_cannot_be_locked_for_a_save(open_memory, memory_path):
    open_memory()
    with pytest.raises(MemoryInUseError):
        with memory_folder_locked(memory_path):
            pass
