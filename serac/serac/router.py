"""Finds, for each query, the stored edit that covers it (if any).

FAISS proposes the `top_k` nearest edits by embedding; the cross-encoder re-scores those
candidates; the chosen one routes the query when its probability reaches the threshold.
Several edits can cover one query (a fact edited twice in different words): with
`conflicts="newest"` the newest of them answers, with "closest" the best-scoring one.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from index import EditMemory
from serac.serac.config import SERACConfig
from serac.serac.scope_classifier import ScopeClassifier


@dataclass(frozen=True)
class Route:
    """The best stored edit for a query; `edit_id` is None when the memory is empty."""

    edit_id: str | None
    prompt: str
    target: str
    probability: float
    in_scope: bool


NO_EDIT = Route(edit_id=None, prompt="", target="", probability=0.0, in_scope=False)


class Router:
    def __init__(self, classifier: ScopeClassifier, memory: EditMemory, config: SERACConfig, batch_size: int = 64):
        self.classifier = classifier
        self.memory = memory
        self.config = config
        self.batch_size = batch_size

    @torch.no_grad()
    def route(self, queries: list[str]) -> list[Route]:
        if not queries or self.memory.count() == 0:
            return [NO_EDIT for _ in queries]
        if self.config.retrieval == "exhaustive":
            everything = self.memory.list()
            candidates = [[(edit, None) for edit in everything] for _ in queries]
            logits = self._logits(queries, candidates)
        else:
            vectors = self.classifier.encode(queries, self.batch_size)
            candidates, logits = self._search(queries, vectors, self.config.top_k)
            if self.config.conflicts == "newest":
                self._widen_crowded(queries, vectors, candidates, logits)
        routes = []
        for query, query_candidates, query_logits in zip(queries, candidates, logits):
            if not query_candidates:
                routes.append(NO_EDIT)
                continue
            best = self._choose(query, [edit for edit, _ in query_candidates], query_logits)
            edit = query_candidates[best][0]
            probability = float(torch.sigmoid(torch.tensor(query_logits[best])))
            routes.append(Route(str(edit.id), edit.prompt, edit.target, probability, probability >= self.config.threshold))
        return routes

    def _search(self, queries: list[str], vectors: np.ndarray, k: int) -> tuple[list[list[tuple]], list[np.ndarray]]:
        hits = self.memory.search(vectors, k=k)
        candidates = [[(hit, hit.score) for hit in query_hits] for query_hits in hits]
        return candidates, self._logits(queries, candidates)

    def _widen_crowded(self, queries, vectors, candidates, logits) -> None:
        """Search again, 4x wider, for queries whose every candidate covers them: a fact edited
        more than `top_k` times may have its newest edit just outside the first candidates."""
        k = self.config.top_k
        while k < self.memory.count():
            crowded = [
                i for i, (query_candidates, query_logits) in enumerate(zip(candidates, logits))
                if len(query_candidates) == k and len(self._covering(query_logits)) == k
            ]
            if not crowded:
                return
            k *= 4
            wider, wider_logits = self._search([queries[i] for i in crowded], vectors[crowded], k)
            for i, query_candidates, query_logits in zip(crowded, wider, wider_logits):
                candidates[i], logits[i] = query_candidates, query_logits

    def _covering(self, logits: np.ndarray) -> list[int]:
        """Candidates in scope whose logit is within `conflict_margin` of the best: edits of one fact."""
        floor = max(_logit(self.config.threshold), logits.max() - self.config.conflict_margin)
        return [i for i, logit in enumerate(logits) if logit >= floor]

    def _choose(self, query: str, edits: list, logits: np.ndarray) -> int:
        """Index of the candidate edit that answers `query` (see `SERACConfig.conflicts`)."""
        if self.config.conflicts == "newest":
            covering = self._covering(logits)
            if covering:
                return max(covering, key=lambda i: edits[i].id)
        # An edit of exactly this prompt comes first; then the logit, not the probability, which
        # saturates at 1.0; on a tie (the same prompt edited twice) the newest edit wins.
        return max(range(len(edits)), key=lambda i: (edits[i].prompt == query, logits[i], edits[i].id))

    def _logits(self, queries: list[str], candidates: list[list[tuple]]) -> list[np.ndarray]:
        """In-scope logit of every (candidate edit, query) pair, grouped by query."""
        if not self.config.rerank:
            return [
                self.classifier.similarity_logits(torch.tensor([score for _, score in pairs])).float().cpu().numpy()
                for pairs in candidates
            ]
        edit_texts = [edit.prompt for pairs in candidates for edit, _ in pairs]
        query_texts = [query for query, pairs in zip(queries, candidates) for _ in pairs]
        logits = torch.cat(
            [
                self.classifier.cross_logits(edit_texts[i : i + self.batch_size], query_texts[i : i + self.batch_size])
                for i in range(0, len(edit_texts), self.batch_size)
            ]
        ) if edit_texts else torch.empty(0)
        flat = logits.float().cpu().numpy()
        sizes = np.cumsum([len(pairs) for pairs in candidates])[:-1]
        return np.split(flat, sizes)


def _logit(probability: float) -> float:
    if probability <= 0.0:
        return -math.inf
    if probability >= 1.0:
        return math.inf
    return math.log(probability / (1.0 - probability))
