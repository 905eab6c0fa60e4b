"""Builds the approximate index of an "auto" memory from a snapshot of its vectors, and
measures it: how many clusters, how many of them to scan, and the recall that gives.

The clusters number about 4*sqrt(n), a power of two (4096 at 1M vectors, where
benchmarks/memory/README.md found 4096 lists need fewer scanned vectors than 2048 for the
same recall), and never fewer than faiss's 39 training points per cluster allow.

The vectors are stored as float32 ("flat") or in 8 bits a dimension ("sq8": faiss's scalar
quantizer over each vector's residual from its list's centroid). 8 bits hold a quarter of the
memory and scan faster; the scores they give are approximate and reorder near ties, so a search
asks for RESCORE_FACTOR times the hits and re-scores them with the float32 vectors (EditMemory
reads them from its store), as faiss's IndexRefine does with a second copy in memory.

Recall is measured on the stored vectors themselves, the real embeddings: a sample of them
is searched, each for its nearest *other* vectors, exactly and approximately. recall@1 is
the share of queries whose first approximate hit is an exact nearest other; recall@k the
share of the exact k nearest others among the k approximate hits. Hits are compared by their
exact score (recomputed from the float32 vectors, whatever the storage), so that ties (the
same prompt stored twice) do not count as misses.

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
# 8-bit scores reorder near ties: this many times the hits asked for are re-scored exactly.
RESCORE_FACTOR = 4


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
    storage: str = "flat"  # "flat" or "sq8" (indexes built before the choice are flat)

    def as_dict(self) -> dict:
        return asdict(self)


def cluster_count(size: int) -> int:
    """IVF lists for `size` vectors: the power of two nearest 4*sqrt(size), within faiss's minimum of training points."""
    wanted = 2 ** round(np.log2(max(4 * np.sqrt(size), 1)))
    return int(max(1, min(wanted, 2 ** int(np.log2(max(size // IVF_MIN_POINTS_PER_LIST, 1))))))


def train_ivf(vectors: np.ndarray, nlist: int, storage: str = "flat") -> faiss.IndexIVF:
    """An empty inner-product IVF index with `nlist` lists trained on (a sample of) `vectors`,
    storing vectors as float32 ("flat") or 8-bit residuals ("sq8")."""
    dim = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    if storage == "sq8":
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    elif storage == "flat":
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(f"IVF storage must be 'flat' or 'sq8', got {storage!r}")
    ivf.cp.max_points_per_centroid = IVF_MAX_TRAINING_POINTS_PER_LIST
    ivf.train(vectors)
    return ivf


@dataclass(frozen=True)
class _SelfQueries:
    """A sample of stored vectors searched for their nearest others, with the exact answer."""

    ids: np.ndarray  # (n,) the queries' own ids
    vectors: np.ndarray  # (n, dim)
    exact_scores: np.ndarray  # (n, k) exact scores of each query's k nearest others, descending


def build_ivf(
    ids: np.ndarray,
    vectors: np.ndarray,
    target_recall: float,
    k: int = 10,
    sample: int = 1000,
    seed: int = 0,
    nlist: int | None = None,
    storage: str = "flat",
):
    """(a filled IVF index, its Approximation) for these vectors; runs outside any lock
    (`nlist` None: `cluster_count`'s choice; another is for benchmarks comparing them)."""
    started = time.perf_counter()
    nlist = nlist or cluster_count(len(vectors))
    ivf = train_ivf(vectors, nlist, storage)
    ivf.add_with_ids(vectors, ids)
    rows = np.random.default_rng(seed).choice(len(vectors), min(sample, len(vectors)), replace=False)
    k = min(k, len(vectors) - 1)
    queries = _SelfQueries(ids[rows], vectors[rows], _exact_other_scores(vectors, vectors[rows], k))
    exact = _ExactScores(ids, vectors)
    met = 1
    while _recall(ivf, queries, exact, met)[0] < target_recall and met < nlist:
        met = min(2 * met, nlist)
    nprobe = min(NPROBE_MARGIN * met, nlist)
    recall = _recall(ivf, queries, exact, nprobe)
    seconds = time.perf_counter() - started
    return ivf, Approximation(nlist, nprobe, recall[0], recall[1], k, len(rows), len(vectors), seconds, nprobe_met=met, storage=storage)


class _ExactScores:
    """The float32 vectors of the build by id, to re-score hits as EditMemory.search does from its store."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray):
        self._order = np.argsort(ids)
        self._sorted_ids = ids[self._order]
        self._vectors = vectors

    def vectors_of(self, found_ids: np.ndarray) -> np.ndarray:
        """Vectors (n, m, dim) of the hits (n, m) (any row for id -1: `rescore` ignores it)."""
        return self._vectors[self._order[np.clip(np.searchsorted(self._sorted_ids, found_ids), 0, len(self._order) - 1)]]


def rescore(queries: np.ndarray, found_ids: np.ndarray, found_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each query's hits by exact inner product: (scores (n, k), ids (n, k)), given
    the hits' ids (n, m), -1 for none, and their float32 vectors (n, m, dim)."""
    scores = np.where(found_ids >= 0, np.einsum("qd,qmd->qm", queries, found_vectors), -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1).astype(np.float32), np.take_along_axis(found_ids, order, axis=1)


def scores_are_approximate(index: faiss.Index) -> bool:
    """Whether the index scores hits from 8-bit codes (EditMemory re-scores them exactly)."""
    return isinstance(index, faiss.IndexIVFScalarQuantizer)


def hits_to_rescore(k: int, approximate: bool) -> int:
    """How many hits to ask an index for so that its k best by exact score are among them."""
    return k * RESCORE_FACTOR if approximate else k


def _exact_other_scores(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Scores of each query's k nearest stored vectors after its own (n_queries, k)."""
    scores, _ = faiss.knn(queries, vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return scores[:, 1:]


def _recall(ivf: faiss.IndexIVF, queries: _SelfQueries, exact: _ExactScores, nprobe: int) -> tuple[float, float]:
    """(recall@1, recall@k) of the IVF search with `nprobe` against the exact scores, its hits
    re-scored exactly as EditMemory.search re-scores them."""
    k = queries.exact_scores.shape[1]
    if k == 0:
        return 1.0, 1.0
    _, found_ids = ivf.search(queries.vectors, hits_to_rescore(k + 1, scores_are_approximate(ivf)), params=faiss.SearchParametersIVF(nprobe=nprobe))
    found_ids = np.where(found_ids == queries.ids[:, None], -1, found_ids)  # each query's own hit, wherever it ranks
    found, _ = rescore(queries.vectors, found_ids, exact.vectors_of(found_ids), k)
    first = float(np.mean(found[:, 0] >= queries.exact_scores[:, 0] - _TIE_TOLERANCE))
    kth = queries.exact_scores[:, -1:] - _TIE_TOLERANCE
    at_k = float(np.mean(np.sum(found >= kth, axis=1) / k))
    return first, min(at_k, 1.0)
