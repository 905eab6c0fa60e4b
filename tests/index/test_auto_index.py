"""index_kind "auto": exact while small, an IVF index trained in a background thread past a
size threshold, installed with the changes made meanwhile, measured, saved and reloaded."""

import threading
import time

import numpy as np
import pytest

import index.memory
from index import EditMemory, MemoryConfig
from index.index_file import INDEX_FILE, read_manifest

AUTO = MemoryConfig(index_kind="auto", auto_threshold=400, flush_every=0)


def _ids_found_by_own_vector(memory, ids, vectors) -> bool:
    hits = memory.search(vectors, k=1)
    return [row[0].id for row in hits] == list(ids)


def test_exact_while_small_then_an_ivf_index_with_measured_recall(open_memory, unit_vectors, add_numbered):
    memory = open_memory(AUTO)
    vectors = unit_vectors(600)
    ids = add_numbered(memory, vectors[:399])
    assert memory.info()["search"] == "exact" and not memory.is_building_index
    ids += memory.add_many(["p"] * 201, ["t"] * 201, vectors[399:])
    assert memory.wait_for_index_build(timeout=60)
    info = memory.info()
    assert info["search"] == "ivf" and info["edits"] == 600
    approximation = info["approximation"]
    assert approximation["vectors"] == 600 and approximation["nlist"] >= 2
    assert approximation["recall_at_1"] >= 0.99 and 0 < approximation["recall_at_k"] <= 1
    assert 1 <= approximation["nprobe"] <= approximation["nlist"]
    assert _ids_found_by_own_vector(memory, ids, vectors)


def test_searches_and_changes_go_on_while_the_index_builds_and_are_in_the_installed_index(
    open_memory, unit_vectors, add_numbered, monkeypatch, memory_path
):
    release = threading.Event()
    real_build = index.memory.build_ivf

    def held_build(*arguments, **settings):
        release.wait(30)
        return real_build(*arguments, **settings)

    monkeypatch.setattr(index.memory, "build_ivf", held_build)
    memory = open_memory(AUTO)
    vectors = unit_vectors(700)
    ids = add_numbered(memory, vectors[:500])
    assert memory.is_building_index
    started = time.perf_counter()
    ids += memory.add_many(["later"] * 200, ["t"] * 200, vectors[500:])
    memory.remove(ids[0])
    assert _ids_found_by_own_vector(memory, ids[1:], vectors[1:])
    memory.flush()  # writes the exact index in place, never the one being built
    assert time.perf_counter() - started < 10 and memory.is_building_index
    assert memory.info()["search"] == "exact" and read_manifest(memory_path).approximation is None
    release.set()
    assert memory.wait_for_index_build(timeout=60)
    assert memory.info()["search"] == "ivf"
    assert _ids_found_by_own_vector(memory, ids[1:], vectors[1:])  # the 200 added during the build too
    assert all(hit.id != ids[0] for row in memory.search(vectors[:1], k=5) for hit in row)


def test_a_trained_index_is_saved_and_loaded_without_rebuilding(open_memory, unit_vectors, add_numbered, memory_path, caplog):
    memory = open_memory(AUTO)
    vectors = unit_vectors(500)
    ids = add_numbered(memory, vectors)
    assert memory.wait_for_index_build(timeout=60)
    measured = memory.info()["approximation"]
    memory.close()
    written = (memory_path / INDEX_FILE).stat().st_mtime_ns
    reopened = open_memory(AUTO)
    assert reopened.info()["search"] == "ivf" and not reopened.is_building_index
    assert reopened.info()["approximation"] == measured
    assert _ids_found_by_own_vector(reopened, ids, vectors)
    assert (memory_path / INDEX_FILE).stat().st_mtime_ns == written
    assert "Rebuilding" not in caplog.text


def test_the_index_is_trained_again_when_the_memory_has_doubled(open_memory, unit_vectors, add_numbered):
    memory = open_memory(AUTO)
    vectors = unit_vectors(1000)
    ids = add_numbered(memory, vectors[:400])
    assert memory.wait_for_index_build(timeout=60)
    assert memory.info()["approximation"]["vectors"] == 400
    ids += memory.add_many(["p"] * 399, ["t"] * 399, vectors[400:799])
    assert not memory.is_building_index
    ids += memory.add_many(["p"] * 201, ["t"] * 201, vectors[799:])
    assert memory.wait_for_index_build(timeout=60)
    assert memory.info()["approximation"]["vectors"] == 1000  # trained on the IVF index's own contents
    assert _ids_found_by_own_vector(memory, ids, vectors)


def test_a_build_running_when_the_memory_is_cleared_or_closed_is_dropped(open_memory, unit_vectors, add_numbered, monkeypatch):
    release = threading.Event()
    real_build = index.memory.build_ivf
    monkeypatch.setattr(index.memory, "build_ivf", lambda *a, **k: (release.wait(30), real_build(*a, **k))[1])
    memory = open_memory(AUTO)
    add_numbered(memory, unit_vectors(450))
    memory.clear()
    release.set()
    assert memory.wait_for_index_build(timeout=60)
    assert memory.info()["search"] == "exact" and memory.info()["edits"] == 0


def test_a_failed_build_leaves_exact_search_and_is_reported(open_memory, unit_vectors, add_numbered, monkeypatch):
    def failing_build(*arguments, **settings):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(index.memory, "build_ivf", failing_build)
    memory = open_memory(AUTO)
    vectors = unit_vectors(450)
    ids = add_numbered(memory, vectors)
    assert memory.wait_for_index_build(timeout=60)
    assert memory.info()["search"] == "exact" and "out of memory" in memory.info()["build_error"]
    assert _ids_found_by_own_vector(memory, ids, vectors)


@pytest.mark.parametrize(("setting", "value"), [("target_recall", 0.0), ("target_recall", 1.5), ("retrain_growth", 1.0), ("auto_threshold", 0)])
def test_bad_auto_settings_are_refused(setting, value):
    with pytest.raises(ValueError, match=setting):
        MemoryConfig(index_kind="auto", **{setting: value})


def test_an_exact_and_an_approximate_search_agree_on_paraphrase_like_queries(open_memory, unit_vectors, add_numbered):
    memory = open_memory(AUTO)
    vectors = unit_vectors(800)
    ids = add_numbered(memory, vectors)
    assert memory.wait_for_index_build(timeout=60)
    noisy = vectors + 0.1 * unit_vectors(800, seed=1)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    found = [row[0].id for row in memory.search(noisy, k=1)]
    assert np.mean(np.array(found) == np.array(ids)) >= 0.95



def test_an_eight_bit_index_returns_exact_scores_in_exact_order(open_memory, unit_vectors, add_numbered):
    memory = open_memory(AUTO)  # ivf_storage "sq8", the default
    vectors = unit_vectors(800)
    ids = add_numbered(memory, vectors)
    assert memory.wait_for_index_build(timeout=60)
    assert memory.info()["approximation"]["storage"] == "sq8"
    queries = unit_vectors(20, seed=1)
    for query, hits in zip(queries, memory.search(queries, k=5)):
        exact = [float(vectors[ids.index(hit.id)] @ query) for hit in hits]
        assert [hit.score for hit in hits] == pytest.approx(exact, abs=1e-6)  # from the store's float32 vectors
        assert exact == sorted(exact, reverse=True)


def test_a_rebuild_reads_the_exact_vectors_from_the_store_not_the_8_bit_codes(open_memory, unit_vectors, add_numbered, monkeypatch):
    built_from = []
    real_build = index.memory.build_ivf
    monkeypatch.setattr(index.memory, "build_ivf", lambda ids, vectors, *a, **k: (built_from.append(vectors), real_build(ids, vectors, *a, **k))[1])
    memory = open_memory(AUTO)
    vectors = unit_vectors(800)
    add_numbered(memory, vectors[:400])
    assert memory.wait_for_index_build(timeout=60)
    memory.add_many(["p"] * 400, ["t"] * 400, vectors[400:])
    assert memory.wait_for_index_build(timeout=60)
    assert len(built_from) == 2 and memory.info()["approximation"]["vectors"] == 800
    np.testing.assert_array_equal(built_from[1], vectors)


def test_changes_the_build_has_read_already_are_not_stored_twice(open_memory, unit_vectors, add_numbered, monkeypatch):
    # The build reads the store while adds go on: a vector added meanwhile may be both in what it
    # read and in the changes replayed at install, and must end up in the index once.
    release = threading.Event()
    real_read = index.memory.EditMemory._stored_vectors
    monkeypatch.setattr(index.memory.EditMemory, "_stored_vectors", lambda self: (release.wait(30), real_read(self))[1])
    memory = open_memory(AUTO)
    vectors = unit_vectors(700)
    ids = add_numbered(memory, vectors[:400])
    ids += memory.add_many(["later"] * 300, ["t"] * 300, vectors[400:])
    memory.remove(ids[-1])
    release.set()
    assert memory.wait_for_index_build(timeout=60)
    assert memory.info()["search"] == "ivf" and len(memory._index) == 699
    hits = memory.search(vectors[400:410], k=2)
    assert [row[0].id for row in hits] == ids[400:410]
    assert all(row[0].id != row[1].id for row in hits)
    assert all(hit.id != ids[-1] for row in memory.search(vectors[-1:], k=5) for hit in row)


def test_a_memory_saved_with_a_float32_ivf_index_opens_as_it_is_under_the_8_bit_default(open_memory, unit_vectors, add_numbered, memory_path, caplog):
    memory = open_memory(MemoryConfig(index_kind="auto", auto_threshold=400, flush_every=0, ivf_storage="flat"))
    vectors = unit_vectors(500)
    ids = add_numbered(memory, vectors)
    assert memory.wait_for_index_build(timeout=60)
    memory.close()
    written = (memory_path / INDEX_FILE).stat().st_mtime_ns
    reopened = open_memory(AUTO)
    assert reopened.info()["approximation"]["storage"] == "flat" and not reopened.is_building_index
    assert _ids_found_by_own_vector(reopened, ids, vectors)
    assert (memory_path / INDEX_FILE).stat().st_mtime_ns == written and "Rebuilding" not in caplog.text


def test_an_unknown_storage_is_refused():
    with pytest.raises(ValueError, match="ivf_storage"):
        MemoryConfig(index_kind="auto", ivf_storage="pq")
