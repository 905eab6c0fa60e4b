"""Builds the approximate index of an "auto" memory from a snapshot of its vectors, and
measures it: how many clusters, how many of them to scan, and the recall that gives.

The clusters number about 4*sqrt(n), a power of two (4096 at 1M vectors, where
benchmarks/memory/README.md found 4096 lists need fewer scanned vectors than 2048 for the
same recall), and never fewer than faiss's 39 training points per cluster allow.

Recall is measured on the stored vectors themselves, the real embeddings: a sample of them
is searched, each for its nearest *other* vectors, exactly and approximately. recall@k is
the share of the exact k nearest others that the approximate search finds, counted by
score so that ties (the same prompt stored twice) do not count as misses.

`nprobe` is `NPROBE_MARGIN` times the smallest power of two whose recall@1 reaches the target
on those self-queries. A stored vector searched for is easier to find than a real query: it
sits on a stored point, a real paraphrase some way off it, nearer other clusters. On the
10^6-edit CounterFact + zsRE memory of benchmarks/scale, the smallest nprobe that reached
0.99 on self-queries (128 of 4,096 lists) found the exact nearest edit for 0.978 of real
paraphrase queries, twice as many lists for 0.997 (`compare_indexes.py --run-dir`,
benchmarks/scale/README.md). The margin costs a second power of two of scanned lists.
"""

import time
from dataclasses import asdict, dataclass

import faiss
import numpy as np

IVF_MIN_POINTS_PER_LIST = 39  # faiss warns of poor clusters below this
# k-means on faiss's default of 256 points per cluster takes minutes at 1M vectors on two
# cores; 64 stays well above the 39 faiss asks for.
IVF_MAX_TRAINING_POINTS_PER_LIST = 64
_TIE_TOLERANCE = 1e-5
NPROBE_MARGIN = 2  # lists scanned beyond what self-queries need, for real queries (see above)


@dataclass(frozen=True)
class Approximation:
    """What the background build chose and measured; kept with the index file."""

    nlist: int
    nprobe: int
    recall_at_1: float
    recall_at_k: float
    k: int
    sample: int
    vectors: int  # how many vectors the index was trained on
    seconds: float  # training, filling and measuring
    # the smallest nprobe whose self-query recall@1 met the target; nprobe is NPROBE_MARGIN
    # times it (None: an index built before the margin, which scanned just that many)
    nprobe_met: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def cluster_count(size: int) -> int:
    """IVF lists for `size` vectors: the power of two nearest 4*sqrt(size), within faiss's minimum of training points."""
    wanted = 2 ** round(np.log2(max(4 * np.sqrt(size), 1)))
    return int(max(1, min(wanted, 2 ** int(np.log2(max(size // IVF_MIN_POINTS_PER_LIST, 1))))))


def train_ivf(vectors: np.ndarray, nlist: int) -> faiss.IndexIVFFlat:
    """An empty inner-product IVF index with `nlist` lists trained on (a sample of) `vectors`."""
    dim = vectors.shape[1]
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.max_points_per_centroid = IVF_MAX_TRAINING_POINTS_PER_LIST
    ivf.train(vectors)
    return ivf


def build_ivf(
    ids: np.ndarray, vectors: np.ndarray, target_recall: float, k: int = 10, sample: int = 1000, seed: int = 0, nlist: int | None = None
):
    """(a filled IVF index, its Approximation) for these vectors; runs outside any lock
    (`nlist` None: `cluster_count`'s choice; another is for benchmarks comparing them)."""
    started = time.perf_counter()
    nlist = nlist or cluster_count(len(vectors))
    ivf = train_ivf(vectors, nlist)
    ivf.add_with_ids(vectors, ids)
    queries = vectors[np.random.default_rng(seed).choice(len(vectors), min(sample, len(vectors)), replace=False)]
    k = min(k, len(vectors) - 1)
    exact_scores = _exact_other_scores(vectors, queries, k)
    met = 1
    while _recall(ivf, queries, exact_scores, met)[0] < target_recall and met < nlist:
        met = min(2 * met, nlist)
    nprobe = min(NPROBE_MARGIN * met, nlist)
    recall = _recall(ivf, queries, exact_scores, nprobe)
    seconds = time.perf_counter() - started
    return ivf, Approximation(nlist, nprobe, recall[0], recall[1], k, len(queries), len(vectors), seconds, nprobe_met=met)


def _exact_other_scores(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Scores of each query's k nearest stored vectors after its own (n_queries, k)."""
    scores, _ = faiss.knn(queries, vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return scores[:, 1:]


def _recall(ivf: faiss.IndexIVFFlat, queries: np.ndarray, exact_scores: np.ndarray, nprobe: int) -> tuple[float, float]:
    """(recall@1, recall@k) of the IVF search with `nprobe` against the exact scores."""
    k = exact_scores.shape[1]
    if k == 0:
        return 1.0, 1.0
    scores, _ = ivf.search(queries, k + 1, params=faiss.SearchParametersIVF(nprobe=nprobe))
    found = scores[:, 1:]
    first = float(np.mean(found[:, 0] >= exact_scores[:, 0] - _TIE_TOLERANCE))
    kth = exact_scores[:, -1:] - _TIE_TOLERANCE
    at_k = float(np.mean(np.sum(found >= kth, axis=1) / k))
    return first, min(at_k, 1.0)
