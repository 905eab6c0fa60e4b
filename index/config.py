"""Settings of an edit memory and of its vector index."""

from dataclasses import dataclass
from typing import Literal, get_args

from index.validation import check_positive_int

IndexKind = Literal["flat", "hnsw", "ivf", "flat_l2", "auto"]
INDEX_KINDS: tuple[str, ...] = get_args(IndexKind)
IvfStorage = Literal["sq8", "flat"]
IVF_STORAGES: tuple[str, ...] = get_args(IvfStorage)


@dataclass(frozen=True)
class MemoryConfig:
    """How an EditMemory indexes, validates and persists its edits.

    index_kind:
        "flat"    exact inner product (default; ~12 ms per query at 100k edits).
        "hnsw"    approximate inner product over a graph; good up to ~100k edits.
                  Slow to build (17 min for 1M on 2 cores, also when rebuilt on open).
        "ivf"     approximate inner product over `ivf_nlist` clusters, the choice at
                  1M edits; exact until it holds enough vectors to train (39 per cluster).
        "flat_l2" exact squared L2 distance (smaller is closer), for the hidden-state
                  cache baseline.
        "auto"    exact while the memory holds fewer than `auto_threshold` edits; past it,
                  an IVF index (about 4*sqrt(n) clusters) is trained in a background thread
                  while searches stay exact, then put in place; it is trained again each
                  time the memory has grown `retrain_growth` times. Its nprobe is twice
                  the smallest that reaches `target_recall` (recall@1 against exact search,
                  measured on a sample of the stored vectors, which real queries find
                  harder: see index/ivf_build.py) and reported by EditMemory.info().
    ivf_storage:      "auto": how its IVF index holds the vectors. "sq8" (default): 8 bits a
                      dimension, a quarter of float32's memory and faster to scan (8.9 against
                      14.7 ms of CPU per query at 10^6 edits, the same top-5 candidates for
                      0.997 of real queries, benchmarks/scale/README.md); search scores are then
                      approximate inner products. "flat": float32, exact scores. A memory keeps
                      the structure it was saved with until its next build.
    hnsw_m:           graph neighbours per node; more is slower to build, better recall.
    hnsw_ef_construction: candidate list size while building the graph.
    ef_search:        candidate list size while searching HNSW.
    ivf_nlist:        number of IVF clusters; about 2*sqrt(expected size), see
                      benchmarks/memory/README.md.
    nprobe:           IVF clusters scanned per query.
    auto_threshold:   "auto": the size from which an approximate index is built.
    target_recall:    "auto": the recall@1 the chosen nprobe must reach (0 < r <= 1).
    retrain_growth:   "auto": train again when the memory has grown this many times (> 1).
    max_text_chars:   longest prompt or target accepted.
    flush_every:      write the index file after this many changes, or a tenth of the
                      memory's size when that is more (0: only on
                      flush()/close()). Edits are durable without it: the store is the
                      source of truth and a stale index file is rebuilt on open. Writing
                      a 1M-vector index takes seconds, so keep this large.
    """

    index_kind: IndexKind = "flat"
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    ef_search: int = 128
    ivf_nlist: int = 1024
    nprobe: int = 64
    # 50k edits: exact search costs ~6 ms of CPU there (benchmarks/memory), under 1% of an answer.
    auto_threshold: int = 50_000
    target_recall: float = 0.99
    ivf_storage: IvfStorage = "sq8"
    retrain_growth: float = 2.0
    max_text_chars: int = 10_000
    flush_every: int = 10_000

    def __post_init__(self) -> None:
        if self.index_kind not in INDEX_KINDS:
            raise ValueError(f"MemoryConfig.index_kind must be one of {INDEX_KINDS}, got {self.index_kind!r}")
        for name in ("hnsw_m", "hnsw_ef_construction", "ef_search", "ivf_nlist", "nprobe", "auto_threshold", "max_text_chars"):
            check_positive_int(getattr(self, name), f"MemoryConfig.{name}")
        if self.ivf_storage not in IVF_STORAGES:
            raise ValueError(f"MemoryConfig.ivf_storage must be one of {IVF_STORAGES}, got {self.ivf_storage!r}")
        if isinstance(self.target_recall, bool) or not isinstance(self.target_recall, (int, float)) or not 0 < self.target_recall <= 1:
            raise ValueError(f"MemoryConfig.target_recall must be a number in (0, 1], got {self.target_recall!r}")
        if isinstance(self.retrain_growth, bool) or not isinstance(self.retrain_growth, (int, float)) or not self.retrain_growth > 1:
            raise ValueError(f"MemoryConfig.retrain_growth must be a number > 1, got {self.retrain_growth!r}")
        if isinstance(self.flush_every, bool) or not isinstance(self.flush_every, int) or self.flush_every < 0:
            raise ValueError(f"MemoryConfig.flush_every must be an int >= 0, got {self.flush_every!r}")
