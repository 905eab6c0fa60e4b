"""Bad inputs are refused with a clear InvalidEditError (a ValueError), and nothing is stored."""

import numpy as np
import pytest

from index import InvalidEditError, MemoryConfig


@pytest.mark.parametrize(
    ("prompt", "target", "message"),
    [
        ("", "t", r"prompts\[0\] must not be empty"),
        ("p", "   \n\t", r"targets\[0\] must not be empty"),
        (None, "t", r"prompts\[0\] must be a string, got NoneType"),
        ("p", 42, r"targets\[0\] must be a string, got int"),
        (b"bytes", "t", r"prompts\[0\] must be a string, got bytes"),
        ("x" * 101, "t", r"prompts\[0\] is 101 characters long; the limit is 100"),
    ],
)
def test_bad_text_is_refused(open_memory, unit_vectors, prompt, target, message):
    memory = open_memory(MemoryConfig(max_text_chars=100))
    with pytest.raises(InvalidEditError, match=message):
        memory.add(prompt, target, unit_vectors(1)[0])
    assert memory.count() == 0


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.zeros(15), r"shape \(16,\), got \(15,\)"),
        (np.zeros((1, 16)), r"shape \(16,\), got \(1, 16\)"),
        (np.full(16, np.nan), "NaN or infinite"),
        (np.r_[np.zeros(15), np.inf], "NaN or infinite"),
        ("not a vector", "cannot be read as a float32 array"),
    ],
)
def test_bad_vectors_are_refused(open_memory, vector, message):
    memory = open_memory()
    with pytest.raises(InvalidEditError, match=message):
        memory.add("p", "t", vector)
    assert memory.count() == 0


def test_a_bad_row_refuses_the_whole_batch(open_memory, unit_vectors):
    memory = open_memory()
    vectors = unit_vectors(3)
    vectors[2, 5] = np.nan
    with pytest.raises(InvalidEditError, match="row 2"):
        memory.add_many(["a", "b", "c"], ["a", "b", "c"], vectors)
    with pytest.raises(InvalidEditError, match=r"prompts\[1\]"):
        memory.add_many(["a", " ", "c"], ["a", "b", "c"], unit_vectors(3))
    with pytest.raises(InvalidEditError, match="targets must be a sequence with one entry per vector"):
        memory.add_many(["a", "b", "c"], ["a", "b"], unit_vectors(3))
    with pytest.raises(InvalidEditError, match="prompts must be a sequence"):
        memory.add_many("abc", ["a", "b", "c"], unit_vectors(3))
    assert memory.count() == 0
    assert memory.search(unit_vectors(1), k=3) == [[]]


@pytest.mark.parametrize("metadata", [{"when": object()}, {"x": float("nan")}, ["not", "a", "dict"]])
def test_metadata_must_be_a_json_dict(open_memory, unit_vectors, metadata):
    memory = open_memory()
    with pytest.raises(InvalidEditError, match="metadata"):
        memory.add("p", "t", unit_vectors(1)[0], metadata)


@pytest.mark.parametrize("edit_id", ["1", 1.0, True, None])
def test_edit_ids_must_be_ints(open_memory, edit_id):
    memory = open_memory()
    with pytest.raises(InvalidEditError, match="edit id must be an int"):
        memory.get(edit_id)


def test_bad_queries_are_refused(open_memory, unit_vectors):
    memory = open_memory()
    with pytest.raises(InvalidEditError, match=r"shape \(n, 16\)"):
        memory.search(np.zeros((2, 8)), k=1)
    with pytest.raises(ValueError, match="k must be a positive int"):
        memory.search(unit_vectors(1), k=0)


def test_config_values_are_checked():
    with pytest.raises(ValueError, match="index_kind must be one of"):
        MemoryConfig(index_kind="annoy")
    with pytest.raises(ValueError, match="hnsw_m must be a positive int"):
        MemoryConfig(hnsw_m=0)
    with pytest.raises(ValueError, match="flush_every must be an int >= 0"):
        MemoryConfig(flush_every=-1)
