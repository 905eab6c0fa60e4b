"""The IVF build scans twice the lists its self-measurement needs (real queries sit off the
stored points), stores vectors in float32 or 8 bits, measures recall by exact scores either
way, and still reads measurements saved before these choices."""

import faiss
import numpy as np
import pytest

from index.ivf_build import NPROBE_MARGIN, Approximation, _exact_other_scores, _ExactScores, _recall, _SelfQueries, build_ivf


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _self_queries(ids, vectors, sample, k, seed=0) -> _SelfQueries:
    rows = np.random.default_rng(seed).choice(len(vectors), sample, replace=False)
    return _SelfQueries(ids[rows], vectors[rows], _exact_other_scores(vectors, vectors[rows], k))


def test_nprobe_is_the_margin_times_the_smallest_that_meets_the_target():
    vectors = _unit(6000, 16, seed=0)
    ids = np.arange(len(vectors), dtype=np.int64)
    ivf, approximation = build_ivf(ids, vectors, target_recall=0.9, sample=500)
    met = approximation.nprobe_met
    assert 1 < met < approximation.nlist // NPROBE_MARGIN  # the data leave room for the margin
    assert approximation.nprobe == NPROBE_MARGIN * met
    queries, exact = _self_queries(ids, vectors, 500, approximation.k), _ExactScores(ids, vectors)
    assert _recall(ivf, queries, exact, met)[0] >= 0.9 > _recall(ivf, queries, exact, met // 2)[0]
    assert approximation.recall_at_1 == _recall(ivf, queries, exact, approximation.nprobe)[0] >= 0.9


def test_the_margin_stops_at_every_list():
    vectors = _unit(400, 16, seed=1)
    _, approximation = build_ivf(np.arange(len(vectors), dtype=np.int64), vectors, target_recall=1.0, sample=200)
    assert approximation.nprobe == approximation.nlist >= approximation.nprobe_met


def test_eight_bit_storage_is_a_scalar_quantizer_measured_against_exact_scores():
    vectors = _unit(6000, 32, seed=2)
    ids = np.arange(10, 6010, dtype=np.int64)[::-1].copy()  # ids need not be sorted or start at 0
    ivf, approximation = build_ivf(ids, vectors, target_recall=0.95, sample=500, storage="sq8")
    assert isinstance(ivf, faiss.IndexIVFScalarQuantizer) and approximation.storage == "sq8"
    assert ivf.code_size == 32  # one byte a dimension
    assert approximation.recall_at_1 >= 0.95
    scores, found = ivf.search(vectors[:50], 1, params=faiss.SearchParametersIVF(nprobe=approximation.nlist))
    assert found[:, 0].tolist() == ids[:50].tolist()  # every vector finds itself
    assert np.abs(scores[:, 0] - 1.0).max() < 0.02  # approximately, its own inner product is 1
    flat, flat_approximation = build_ivf(ids, vectors, target_recall=0.95, sample=500, storage="flat")
    assert isinstance(flat, faiss.IndexIVFFlat) and flat_approximation.storage == "flat"


def test_recall_drops_a_query_s_own_hit_wherever_approximate_scores_put_it():
    # A stored pair of near-duplicates: 8-bit scores may rank the other copy above the query
    # itself; recall must still count the other copy as found, not drop it as "the query".
    base = _unit(2000, 16, seed=3)
    vectors = np.concatenate([base, base[:1] + 1e-4 * _unit(1, 16, seed=4)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(len(vectors), dtype=np.int64)
    ivf, _ = build_ivf(ids, vectors, target_recall=0.9, sample=100, storage="sq8")
    queries = _SelfQueries(ids[:1], vectors[:1], _exact_other_scores(vectors, vectors[:1], 3))
    assert _recall(ivf, queries, _ExactScores(ids, vectors), ivf.nlist) == (1.0, 1.0)


def test_an_unknown_storage_is_refused():
    with pytest.raises(ValueError, match="storage"):
        build_ivf(np.arange(400, dtype=np.int64), _unit(400, 16, seed=5), target_recall=0.9, storage="pq")


def test_a_measurement_saved_before_the_margin_and_the_storage_choice_still_loads():
    saved = dict(nlist=64, nprobe=8, recall_at_1=0.995, recall_at_k=0.97, k=10, sample=1000, vectors=5000, seconds=1.5)
    loaded = Approximation(**saved)
    assert loaded.nprobe_met is None and loaded.storage == "flat"
