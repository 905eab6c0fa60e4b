"""VectorIndex: FAISS nearest-neighbour search over edit vectors, labelled by edit id.

Kinds (MemoryConfig.index_kind) and how each keeps ids stable under removal:

  flat, flat_l2  IndexIDMap2 over an exact IndexFlatIP / IndexFlatL2.
  hnsw           IndexIDMap2 over IndexHNSWFlat (inner product). An HNSW graph cannot
                 delete nodes, so a removed vector keeps its node but its label becomes
                 -1 (a tombstone) and searches skip labels < 0; once a quarter of the
                 nodes are tombstones the graph is rebuilt from the live vectors.
  ivf            exact IndexIDMap2(IndexFlatIP) until there are 39 vectors per cluster
                 to train on, then IndexIVFFlat, which keeps ids itself (IndexIDMap over
                 IVF mislabels vectors after a removal, so it is not wrapped).
  auto           exact IndexIDMap2(IndexFlatIP) while small; an IVF index (IndexIVFFlat, or
                 IndexIVFScalarQuantizer with MemoryConfig.ivf_storage "sq8") built
                 elsewhere (EditMemory trains it in a background thread from the store's
                 vectors, see ivf_build.py) is put in place with `install`, which first
                 replays the changes made since `record_changes`. Its nprobe is the one the
                 build chose; with 8-bit storage its scores are approximate.

Search returns (scores, ids) of shape (n_queries, k): inner products (larger is closer)
or, for flat_l2, squared L2 distances (smaller is closer); an 8-bit index's are approximate
(EditMemory asks it for more hits and re-scores them from its store). When fewer than k vectors are
found the row is padded with id -1 and score -inf (+inf for flat_l2).

A VectorIndex is not thread-safe on its own; EditMemory serialises access to it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.config import MemoryConfig
from index.errors import IndexFileError, InvalidEditError
from index.gpu import copy_to_gpu, gpu_search_available
from index.ivf_build import IVF_MIN_POINTS_PER_LIST, Approximation, scores_are_approximate, train_ivf
from index.safe_files import staged_file
from index.validation import as_id_array, as_vector_matrix, check_positive_int

_TOMBSTONE = -1
_MAX_TOMBSTONE_FRACTION = 0.25
_LIVE_LABELS = faiss.IDSelectorRange(0, np.iinfo(np.int64).max)
_TRAINED_IVF_STRUCTURES = {
    "ivf": [(("IndexIVFFlat", faiss.METRIC_INNER_PRODUCT),)],
    "auto": [(("IndexIVFFlat", faiss.METRIC_INNER_PRODUCT),), (("IndexIVFScalarQuantizer", faiss.METRIC_INNER_PRODUCT),)],
}


def _structure(index: faiss.Index) -> tuple[tuple[str, int], ...]:
    """The (class, metric) chain of an index and the indexes it wraps, to recognise its kind."""
    index = faiss.downcast_index(index)
    link = ((type(index).__name__, index.metric_type),)
    if isinstance(index, faiss.IndexIDMap2):
        return link + _structure(index.index)
    return link


class VectorIndex:
    """FAISS index of float32 vectors of one dimension, labelled with non-negative int64 ids."""

    def __init__(self, dim: int, config: MemoryConfig = MemoryConfig()) -> None:
        self.dim = check_positive_int(dim, "dim")
        self.config = config
        self._index = self._new_index()
        self._tombstones = 0
        self.approximation: Approximation | None = None  # "auto": what the installed IVF index measured
        # "auto": changes made since a background build started reading the vectors, replayed by install().
        self._changes_since_recording: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None
        # Exact search is the one that gains much from a GPU; the CPU index stays the
        # one that is changed and saved, since GPU flat indexes cannot remove ids.
        self.uses_gpu = self.kind in ("flat", "flat_l2") and gpu_search_available()
        self._gpu_copy: faiss.Index | None = None

    @property
    def kind(self) -> str:
        return self.config.index_kind

    @property
    def is_trained(self) -> bool:
        """False only for an "ivf" or "auto" index still searching exactly."""
        return self.kind not in ("ivf", "auto") or isinstance(self._index, faiss.IndexIVF)

    @property
    def scores_are_approximate(self) -> bool:
        """True for an 8-bit IVF index: its scores and their order are approximate (see `search`)."""
        return scores_are_approximate(self._index)

    def _new_index(self) -> faiss.Index:
        if self.kind == "flat_l2":
            return faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        if self.kind == "hnsw":
            graph = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = self.config.hnsw_ef_construction
            return faiss.IndexIDMap2(graph)
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))


    def __len__(self) -> int:
        return self._index.ntotal - self._tombstones

    def add(self, ids: Any, vectors: Any) -> None:
        """Add vectors under the given ids; ids must not be in the index already (remove them first)."""
        ids = as_id_array(ids)
        vectors = as_vector_matrix(vectors, self.dim)
        if len(ids) != len(vectors):
            raise InvalidEditError(f"got {len(ids)} ids for {len(vectors)} vectors")
        if self.kind == "ivf" and not self.is_trained and self._index.ntotal + len(ids) >= IVF_MIN_POINTS_PER_LIST * self.config.ivf_nlist:
            self._switch_to_ivf(ids, vectors)
        else:
            self._index.add_with_ids(vectors, ids)
        if self._changes_since_recording is not None:
            self._changes_since_recording.append(("add", ids.copy(), vectors.copy()))
        self._gpu_copy = None

    def _switch_to_ivf(self, new_ids: np.ndarray, new_vectors: np.ndarray) -> None:
        exact = self._index
        ids = np.concatenate([faiss.vector_to_array(exact.id_map), new_ids])
        vectors = np.concatenate([exact.index.reconstruct_n(0, exact.ntotal), new_vectors])
        ivf = train_ivf(vectors, self.config.ivf_nlist)
        ivf.add_with_ids(vectors, ids)
        self._index = ivf

    def record_changes(self) -> None:
        """Keep every change from now on, for `install` to replay onto an index built from the
        vectors as they are now or later ("auto": the build reads them from the store meanwhile)."""
        if self.kind != "auto":
            raise ValueError(f"record_changes() is for index_kind 'auto', not {self.kind!r}")
        self._changes_since_recording = []

    def install(self, built: faiss.IndexIVF, approximation: Approximation) -> None:
        """Search with `built` from now on, after applying to it every change made since
        `record_changes`. The build may have read some of those changes already (it reads while
        they happen), so the ids they added are first taken out of it: replaying is then exact."""
        if self._changes_since_recording is None:
            raise ValueError("install() needs record_changes() first")
        added = [ids for change, ids, _ in self._changes_since_recording if change == "add"]
        if added:
            built.remove_ids(np.concatenate(added))
        for change, ids, vectors in self._changes_since_recording:
            if change == "add":
                built.add_with_ids(vectors, ids)
            else:
                built.remove_ids(ids)
        self._index = built
        self.approximation = approximation
        self._changes_since_recording = None
        self._gpu_copy = None

    def remove(self, ids: Any) -> int:
        """Remove the vectors with these ids; returns how many were found and removed."""
        ids = as_id_array(ids)
        if self.kind == "hnsw":
            removed = self._tombstone(ids)
        else:
            removed = self._index.remove_ids(ids)
        if self._changes_since_recording is not None:
            self._changes_since_recording.append(("remove", ids.copy(), None))
        self._gpu_copy = None
        return int(removed)

    def _hnsw_labels(self) -> np.ndarray:
        """A writable view of the IndexIDMap2 labels, one per HNSW node."""
        id_map = self._index.id_map
        return faiss.rev_swig_ptr(id_map.data(), id_map.size())

    def _tombstone(self, ids: np.ndarray) -> int:
        labels = self._hnsw_labels()
        removed = np.isin(labels, ids)
        labels[removed] = _TOMBSTONE
        removed_count = int(removed.sum())
        self._tombstones += removed_count
        if self._tombstones > _MAX_TOMBSTONE_FRACTION * self._index.ntotal:
            self._rebuild_hnsw_without_tombstones()
        return removed_count

    def _rebuild_hnsw_without_tombstones(self) -> None:
        labels = self._hnsw_labels()
        live_nodes = np.flatnonzero(labels != _TOMBSTONE)
        vectors = self._index.index.reconstruct_batch(live_nodes)
        live_ids = labels[live_nodes].copy()
        self._index = self._new_index()
        self._index.add_with_ids(vectors, live_ids)
        self._tombstones = 0

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest ids of each query row: (scores float32 (n, k), ids int64 (n, k))."""
        queries = as_vector_matrix(queries, self.dim, "queries")
        check_positive_int(k, "k")
        missing_score = np.inf if self.kind == "flat_l2" else -np.inf
        if len(self) == 0:
            return np.full((len(queries), k), missing_score, np.float32), np.full((len(queries), k), -1, np.int64)
        scores, ids = self._searchable_index().search(queries, k, params=self._search_parameters())
        scores[ids < 0] = missing_score
        return scores, ids

    def _search_parameters(self) -> faiss.SearchParameters | None:
        # Passed with each search, not stored in the index, so that they can change
        # without a rebuild and a loaded file cannot carry stale values.
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=self.config.ef_search, sel=_LIVE_LABELS)
        if self.kind == "ivf" and self.is_trained:
            return faiss.SearchParametersIVF(nprobe=self.config.nprobe)
        if self.kind == "auto" and self.is_trained:
            return faiss.SearchParametersIVF(nprobe=self.approximation.nprobe)
        return None

    def set_search_settings(self, *, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Trade speed for recall at search time (HNSW ef_search, IVF nprobe); no rebuild needed."""
        changes = {name: value for name, value in (("ef_search", ef_search), ("nprobe", nprobe)) if value is not None}
        self.config = replace(self.config, **changes)

    def _searchable_index(self) -> faiss.Index:
        if not self.uses_gpu:
            return self._index
        if self._gpu_copy is None:
            self._gpu_copy = copy_to_gpu(self._index)
        return self._gpu_copy

    def save(self, path: str | Path) -> None:
        """Write the index with faiss.write_index, atomically (a crash leaves the old file whole)
        and through a new private file (see `index.safe_files`)."""
        with staged_file(path) as (handle, _):
            faiss.write_index(self._index, faiss.PyCallbackIOWriter(handle.write))

    @classmethod
    def load(
        cls, path: str | Path, dim: int, config: MemoryConfig = MemoryConfig(), approximation: Approximation | None = None
    ) -> VectorIndex:
        """Read an index written by save(); IndexFileError if it is unreadable or of another kind or
        dim. `approximation`: what a trained "auto" index measured (kept in the manifest)."""
        path = Path(path)
        try:
            loaded = faiss.read_index(str(path))
        except RuntimeError as error:
            raise IndexFileError(f"faiss cannot read {path}: {error}") from error
        vector_index = cls(dim, config)
        expected = [_structure(vector_index._index), *_TRAINED_IVF_STRUCTURES.get(config.index_kind, [])]
        if loaded.d != dim or _structure(loaded) not in expected:
            raise IndexFileError(
                f"{path} holds an index {' over '.join(name for name, _ in _structure(loaded))} of dim {loaded.d}, "
                f"not an index of kind {config.index_kind!r} and dim {dim}"
            )
        vector_index._index = loaded
        if config.index_kind == "auto" and vector_index.is_trained:
            if approximation is None:
                raise IndexFileError(f"{path} holds a trained approximate index but its manifest has no measurements of it")
            vector_index.approximation = approximation
        if config.index_kind == "hnsw":
            vector_index._tombstones = int((vector_index._hnsw_labels() == _TOMBSTONE).sum())
        return vector_index
