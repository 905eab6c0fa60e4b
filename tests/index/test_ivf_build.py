"""The IVF build scans twice the lists its self-measurement needs (real queries sit off the
stored points) and still reads measurements saved before that margin."""

import numpy as np

from index.ivf_build import NPROBE_MARGIN, Approximation, _exact_other_scores, _recall, build_ivf


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_nprobe_is_the_margin_times_the_smallest_that_meets_the_target():
    vectors = _unit(6000, 16, seed=0)
    ivf, approximation = build_ivf(np.arange(len(vectors), dtype=np.int64), vectors, target_recall=0.9, sample=500)
    met = approximation.nprobe_met
    assert 1 < met < approximation.nlist // NPROBE_MARGIN  # the data leave room for the margin
    assert approximation.nprobe == NPROBE_MARGIN * met
    queries = vectors[np.random.default_rng(0).choice(len(vectors), 500, replace=False)]
    exact = _exact_other_scores(vectors, queries, approximation.k)
    assert _recall(ivf, queries, exact, met)[0] >= 0.9 > _recall(ivf, queries, exact, met // 2)[0]
    assert approximation.recall_at_1 == _recall(ivf, queries, exact, approximation.nprobe)[0] >= 0.9


def test_the_margin_stops_at_every_list():
    vectors = _unit(400, 16, seed=1)
    _, approximation = build_ivf(np.arange(len(vectors), dtype=np.int64), vectors, target_recall=1.0, sample=200)
    assert approximation.nprobe == approximation.nlist >= approximation.nprobe_met


def test_a_measurement_saved_before_the_margin_still_loads():
    saved = dict(nlist=64, nprobe=8, recall_at_1=0.995, recall_at_k=0.97, k=10, sample=1000, vectors=5000, seconds=1.5)
    assert Approximation(**saved).nprobe_met is None
