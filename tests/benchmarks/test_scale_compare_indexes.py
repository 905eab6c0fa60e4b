"""compare_indexes' table cells and its scalar-quantised IVF variants on small random vectors."""

import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "scale"))

from compare_indexes import row, timed_search  # noqa: E402

from index.ivf_build import train_ivf  # noqa: E402


def test_a_row_counts_first_hits_hits_among_five_and_own_edits():
    found = np.array([[1, 2, 3, 4, 5], [9, 7, 8, 6, 0], [3, 3, 3, 3, 3]])
    truth, own = np.array([1, 7, 4]), np.array([1, 9, 3])
    assert row(found, truth, own) == "0.333 | 0.667 | 1.000"


@pytest.mark.parametrize("storage", ["sq8", "flat"])
def test_a_timed_search_re_scores_8_bit_hits_as_the_memory_does(storage):
    vectors = np.random.default_rng(0).standard_normal((2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(len(vectors), dtype=np.int64)
    ivf = train_ivf(vectors, 16, storage)
    ivf.add_with_ids(vectors, ids)
    queries = vectors[:50] + 0.05 * np.random.default_rng(1).standard_normal((50, 32)).astype(np.float32)
    found, _, _ = timed_search(ivf, queries, faiss.SearchParametersIVF(nprobe=16), vectors=vectors)
    _, exact = faiss.knn(queries, vectors, 5, metric=faiss.METRIC_INNER_PRODUCT)
    np.testing.assert_array_equal(found, exact)  # every list scanned, hits re-scored: the exact top 5 in order
