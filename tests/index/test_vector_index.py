import faiss
import numpy as np
import pytest

import index.vectors
from index import INDEX_KINDS, IndexFileError, MemoryConfig, VectorIndex
from index.gpu import gpu_search_available
from index.ivf_build import build_ivf

DIM = 16
# Small enough that "ivf" trains (39 points per cluster) on a few thousand vectors.
SMALL_IVF = {"ivf_nlist": 32}


def make_index(kind: str) -> VectorIndex:
    return VectorIndex(DIM, MemoryConfig(index_kind=kind, **SMALL_IVF))


def train_if_auto(vector_index: VectorIndex, ids, vectors) -> None:
    """An "auto" index is trained on the vectors (EditMemory reads them from its store in the
    background) and installed."""
    if vector_index.kind == "auto":
        vector_index.record_changes()
        vector_index.install(*build_ivf(np.asarray(ids), vectors, target_recall=0.99, storage=vector_index.config.ivf_storage))


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_add_search_remove_update(kind, unit_vectors):
    vectors = unit_vectors(3000)
    ids = np.arange(100, 3100)
    vector_index = make_index(kind)
    vector_index.add(ids[:1000], vectors[:1000])
    vector_index.add(ids[1000:], vectors[1000:])
    train_if_auto(vector_index, ids, vectors)
    assert len(vector_index) == 3000 and vector_index.is_trained
    _, found = vector_index.search(vectors[:5], k=1)
    assert found[:, 0].tolist() == ids[:5].tolist()

    assert vector_index.remove([100, 101, 999_999]) == 2
    assert len(vector_index) == 2998
    _, found = vector_index.search(vectors[:2], k=3)
    assert not np.isin(found, [100, 101]).any()

    # An update is a removal then an add under the same id.
    vector_index.remove([102])
    vector_index.add([102], vectors[:1])
    _, found = vector_index.search(vectors[:1], k=1)
    assert found.tolist() == [[102]]
    assert len(vector_index) == 2998


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_fewer_than_k_pads_with_minus_one(kind, unit_vectors):
    vector_index = make_index(kind)
    worst = np.inf if kind == "flat_l2" else -np.inf
    scores, ids = vector_index.search(unit_vectors(2), k=3)
    assert ids.tolist() == [[-1] * 3] * 2 and (scores == worst).all()
    vector_index.add([7, 8], unit_vectors(2))
    scores, ids = vector_index.search(unit_vectors(1), k=4)
    assert sorted(ids[0, :2].tolist()) == [7, 8] and ids[0, 2:].tolist() == [-1, -1]
    assert np.isfinite(scores[0, :2]).all() and (scores[0, 2:] == worst).all()


def test_flat_l2_returns_squared_distances(unit_vectors):
    vector_index = make_index("flat_l2")
    vector_index.add([1, 2], np.array([[0] * DIM, [3] + [0] * (DIM - 1)], dtype=np.float32))
    scores, ids = vector_index.search(np.array([[1] + [0] * (DIM - 1)], dtype=np.float32), k=2)
    assert ids.tolist() == [[1, 2]] and scores.tolist() == [[1.0, 4.0]]


def test_ivf_searches_exactly_until_it_can_train(unit_vectors):
    vector_index = make_index("ivf")
    needed = 39 * SMALL_IVF["ivf_nlist"]
    vector_index.add(np.arange(needed - 1), unit_vectors(needed - 1))
    assert not vector_index.is_trained
    vector_index.add([needed - 1], unit_vectors(1, seed=1))
    assert vector_index.is_trained and len(vector_index) == needed
    _, found = vector_index.search(unit_vectors(1, seed=1), k=1)
    assert found.tolist() == [[needed - 1]]


def test_hnsw_tombstones_are_never_returned_and_get_compacted(unit_vectors):
    vectors = unit_vectors(400)
    vector_index = make_index("hnsw")
    vector_index.add(np.arange(400), vectors)
    vector_index.remove(np.arange(0, 400, 8))  # 50 tombstones: below a quarter of the graph
    assert vector_index._index.ntotal == 400 and len(vector_index) == 350
    _, found = vector_index.search(vectors[:16], k=10)
    assert not np.isin(found, np.arange(0, 400, 8)).any() and (found >= 0).all()
    vector_index.remove(np.arange(1, 400, 4))  # 150 tombstones: more than a quarter, so rebuilt
    assert vector_index._index.ntotal == len(vector_index) == 250
    _, found = vector_index.search(vectors[2:3], k=1)
    assert found.tolist() == [[2]]


def test_hnsw_tombstones_survive_save_and_load(tmp_path, unit_vectors):
    vectors = unit_vectors(100)
    vector_index = make_index("hnsw")
    vector_index.add(np.arange(100), vectors)
    vector_index.remove([0, 1])
    vector_index.save(tmp_path / "vectors.faiss")
    loaded = VectorIndex.load(tmp_path / "vectors.faiss", DIM, vector_index.config)
    assert len(loaded) == 98
    _, found = loaded.search(vectors[:2], k=1)
    assert not np.isin(found, [0, 1]).any()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_at_1_matches_flat(kind, unit_vectors):
    stored = unit_vectors(5000, seed=1)
    queries = unit_vectors(200, seed=2)
    exact, approximate = make_index("flat"), make_index(kind)
    for vector_index in (exact, approximate):
        vector_index.add(np.arange(len(stored)), stored)
    _, true_ids = exact.search(queries, k=1)
    _, found_ids = approximate.search(queries, k=1)
    assert np.mean(true_ids[:, 0] == found_ids[:, 0]) >= 0.95


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_save_and_load_round_trip(kind, tmp_path, unit_vectors):
    vectors = unit_vectors(2000)
    vector_index = make_index(kind)
    vector_index.add(np.arange(2000) * 3, vectors)
    train_if_auto(vector_index, np.arange(2000) * 3, vectors)
    vector_index.save(tmp_path / "vectors.faiss")
    loaded = VectorIndex.load(tmp_path / "vectors.faiss", DIM, vector_index.config, vector_index.approximation)
    assert len(loaded) == 2000 and loaded.is_trained == vector_index.is_trained
    np.testing.assert_array_equal(loaded.search(vectors[:20], k=5)[1], vector_index.search(vectors[:20], k=5)[1])


def test_load_refuses_truncated_files_and_other_kinds(tmp_path, unit_vectors):
    path = tmp_path / "vectors.faiss"
    vector_index = make_index("flat")
    vector_index.add(np.arange(100), unit_vectors(100))
    vector_index.save(path)
    with pytest.raises(IndexFileError, match="not an index of kind 'hnsw' and dim 16"):
        VectorIndex.load(path, DIM, MemoryConfig(index_kind="hnsw"))
    with pytest.raises(IndexFileError, match="dim 32"):
        VectorIndex.load(path, 32, MemoryConfig())
    trained = make_index("auto")
    trained.add(np.arange(2000), unit_vectors(2000))
    train_if_auto(trained, np.arange(2000), unit_vectors(2000))
    trained.save(path)
    with pytest.raises(IndexFileError, match="no measurements"):
        VectorIndex.load(path, DIM, trained.config)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IndexFileError, match="faiss cannot read .*vectors.faiss"):
        VectorIndex.load(path, DIM, MemoryConfig())


def test_the_cpu_path_is_taken_without_a_gpu_build_of_faiss():
    assert not hasattr(faiss, "StandardGpuResources")
    assert not gpu_search_available()
    assert not any(make_index(kind).uses_gpu for kind in INDEX_KINDS)


def test_with_a_gpu_flat_search_uses_a_copy_refreshed_after_changes(monkeypatch, tmp_path, unit_vectors):
    copies = []

    def copy_to_fake_gpu(cpu_index):
        copies.append(faiss.clone_index(cpu_index))
        return copies[-1]

    monkeypatch.setattr(index.vectors, "gpu_search_available", lambda: True)
    monkeypatch.setattr(index.vectors, "copy_to_gpu", copy_to_fake_gpu)
    vectors = unit_vectors(10)
    vector_index = make_index("flat")
    assert vector_index.uses_gpu and not make_index("hnsw").uses_gpu
    vector_index.add(np.arange(10), vectors)
    vector_index.search(vectors[:1], k=1)
    vector_index.search(vectors[:1], k=1)
    assert len(copies) == 1
    vector_index.remove([0])
    _, found = vector_index.search(vectors[:1], k=1)
    assert len(copies) == 2 and found[0, 0] != 0
    vector_index.save(tmp_path / "vectors.faiss")
    assert len(VectorIndex.load(tmp_path / "vectors.faiss", DIM)) == 9


def test_search_settings_change_recall_without_a_rebuild(unit_vectors):
    stored, queries = unit_vectors(3000, seed=1), unit_vectors(200, seed=2)
    exact, ivf = make_index("flat"), make_index("ivf")
    for vector_index in (exact, ivf):
        vector_index.add(np.arange(len(stored)), stored)
    _, true_ids = exact.search(queries, k=1)
    ivf.set_search_settings(nprobe=1)
    one_cluster_recall = np.mean(ivf.search(queries, k=1)[1] == true_ids)
    ivf.set_search_settings(nprobe=SMALL_IVF["ivf_nlist"])  # every cluster: exact
    assert one_cluster_recall < 0.9 and (ivf.search(queries, k=1)[1] == true_ids).all()


def test_hnsw_can_lose_every_vector_and_take_new_ones(unit_vectors):
    vectors = unit_vectors(4)
    vector_index = make_index("hnsw")
    vector_index.add(np.arange(4), vectors)
    assert vector_index.remove(np.arange(4)) == 4 and len(vector_index) == 0
    assert vector_index.search(vectors[:1], k=1)[1].tolist() == [[-1]]
    vector_index.add([9], vectors[:1])
    assert vector_index.search(vectors[:1], k=2)[1].tolist() == [[9, -1]]
