"""Finds, for each query, the stored edit that covers it (if any).

FAISS proposes the `top_k` nearest edits by embedding; those under the calibrated embedding
floor are dropped (out of scope, no cross-encoder); the cross-encoder re-scores the rest; the
chosen one (the nearest by embedding among those the cross-encoder scores alike) routes the
query when its probability reaches the threshold.
Several edits can cover one query (a fact edited twice in different words): with
`conflicts="closest"` the best-scoring one answers; with "newest" the newest edit *of the same
fact* as the best-scoring one, i.e. a newer candidate whose own prompt the classifier finds in
scope of the best edit's prompt. Comparing the two edits' prompts, not only each against the
query, keeps a newer look-alike edit of another fact (same subject, other relation) from
answering a paraphrase that the classifier finds close to both.
With `subject_scope`, an edit stored with its subject covers only queries that name it, and edits
of two different subjects are never one fact.
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
        # With subject_scope, a candidate the query does not name is out of scope (its logit masked,
        # so it never covers or supersedes; `in_scope` reads the same flags when the threshold is 0).
        named = [
            [edit.prompt == query or not self.config.subject_scope or _names_subject(query, edit) for edit, _ in query_candidates]
            for query, query_candidates in zip(queries, candidates)
        ]
        for query_named, query_logits in zip(named, logits):
            query_logits[[i for i, ok in enumerate(query_named) if not ok]] = -math.inf
        chosen = [
            self._closest(query, query_candidates, query_logits) if query_candidates else None
            for query, query_candidates, query_logits in zip(queries, candidates, logits)
        ]
        if self.config.conflicts == "newest":
            chosen = self._newest_of_same_fact(candidates, logits, chosen)
        routes = []
        for query, query_candidates, query_logits, query_named, best in zip(queries, candidates, logits, named, chosen):
            if best is None:
                routes.append(NO_EDIT)
                continue
            edit = query_candidates[best][0]
            probability = float(torch.sigmoid(torch.tensor(query_logits[best])))
            # An edit's own prompt is in its scope whatever the classifier says (it can score an
            # identical pair under the threshold, as seen among 10^4 CounterFact edits).
            in_scope = edit.prompt == query or (probability >= self.config.threshold and query_named[best])
            routes.append(Route(str(edit.id), edit.prompt, edit.target, probability, in_scope))
        return routes

    def _search(self, queries: list[str], vectors: np.ndarray, k: int) -> tuple[list[list[tuple]], list[np.ndarray]]:
        hits = self.memory.search(vectors, k=k)
        floor = self.config.embedding_floor if self.config.rerank and self.config.embedding_floor is not None else -math.inf
        # Below the floor a candidate is out of scope without the cross-encoder (an identical prompt never is: cosine 1).
        candidates = [[(hit, hit.score) for hit in query_hits if hit.score >= floor] for query_hits in hits]
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
        """Candidates in scope whose logit is within `conflict_margin` of the best: edits that may be of one fact."""
        floor = max(_logit(self.config.threshold), logits.max() - self.config.conflict_margin)
        return [i for i, logit in enumerate(logits) if logit >= floor]

    def _closest(self, query: str, candidates: list[tuple], logits: np.ndarray) -> int:
        """Index of the candidate edit that covers `query` best.

        An edit of exactly this prompt comes first. Then, among the candidates in scope within
        `conflict_margin` of the best logit, the one nearest the query by embedding: the
        cross-encoder saturates (logits ~7.8) on same-subject edits of vague relations, so it ranks
        "Carl Linnaeus, of" over the edit "The expertise of Carl Linnaeus is" for "Carl Linnaeus is
        known for" by noise, where the embedding still tells them apart (paraphrase success 0.855
        -> 0.900 among 10^5 edits, benchmarks/scale/README.md, session 16). With no candidate in scope
        (or no embedding score: exhaustive retrieval), or on a tie, the best logit, then the newest edit."""
        covering = self._covering(logits) if candidates[0][1] is not None else []

        def rank(i: int) -> tuple:
            edit, similarity = candidates[i]
            return edit.prompt == query, i in covering, similarity if i in covering else -math.inf, logits[i], edit.id

        return max(range(len(candidates)), key=rank)

    def _newest_of_same_fact(self, candidates: list[list[tuple]], logits: list[np.ndarray], closest: list) -> list:
        """For each query, the newest covering candidate that is an edit of the same fact as its
        closest one (`conflicts="newest"`): the two edits' prompts are each in the other's scope.
        One direction is not enough: a classifier can find a same-relation edit of another
        subject covering a prompt ("Jacob Katz expired at" over "Arthur Griffith expired at",
        p = 0.998) and not the other way round (p = 0.000). The same-fact pairs of every query
        in the batch are scored in one batched classifier call, not one call per query."""
        newer = [
            [] if best is None else [i for i in self._covering(query_logits) if edits[i][0].id > edits[best][0].id]
            for edits, query_logits, best in zip(candidates, logits, closest)
        ]
        pairs = [(q, i) for q, indices in enumerate(newer) for i in indices]
        newer_prompts = [candidates[q][i][0].prompt for q, i in pairs]
        closest_prompts = [candidates[q][closest[q]][0].prompt for q, _ in pairs]
        covers = self._covers(newer_prompts + closest_prompts, closest_prompts + newer_prompts)
        same_fact = [forward and backward for forward, backward in zip(covers[: len(pairs)], covers[len(pairs) :])]
        if self.config.subject_scope:
            subjects = [(_subject(candidates[q][i][0]), _subject(candidates[q][closest[q]][0])) for q, i in pairs]
            same_fact = [same and (not a or not b or a == b) for same, (a, b) in zip(same_fact, subjects)]
        superseding = [[] for _ in closest]
        for (q, i), same in zip(pairs, same_fact):
            if same:
                superseding[q].append(i)
        return [
            best if best is None else max([best, *others], key=lambda i: query_candidates[i][0].id)
            for query_candidates, best, others in zip(candidates, closest, superseding)
        ]

    def _covers(self, edit_prompts: list[str], prompts: list[str]) -> list[bool]:
        """Whether each edit prompt has the prompt paired with it in its scope: an identical prompt,
        or the classifier (the cross-encoder; the embedding score when reranking is off) at the threshold."""
        if not edit_prompts:
            return []
        if self.config.rerank:
            logits = self._cross_logits(edit_prompts, prompts)
        else:
            texts = sorted(set(edit_prompts) | set(prompts))
            vectors = dict(zip(texts, self.classifier.encode(texts, self.batch_size)))
            similarities = np.array([vectors[a] @ vectors[b] for a, b in zip(edit_prompts, prompts)], dtype=np.float32)
            logits = self.classifier.similarity_logits(torch.from_numpy(similarities)).float().cpu().numpy()
        floor = _logit(self.config.threshold)
        return [edit_prompt == prompt or logit >= floor for edit_prompt, prompt, logit in zip(edit_prompts, prompts, logits)]

    def _logits(self, queries: list[str], candidates: list[list[tuple]]) -> list[np.ndarray]:
        """In-scope logit of every (candidate edit, query) pair, grouped by query."""
        if not self.config.rerank:
            return [
                self.classifier.similarity_logits(torch.tensor([score for _, score in pairs])).float().cpu().numpy()
                for pairs in candidates
            ]
        edit_texts = [edit.prompt for pairs in candidates for edit, _ in pairs]
        query_texts = [query for query, pairs in zip(queries, candidates) for _ in pairs]
        sizes = np.cumsum([len(pairs) for pairs in candidates])[:-1]
        return np.split(self._cross_logits(edit_texts, query_texts), sizes)

    def _cross_logits(self, edit_texts: list[str], query_texts: list[str]) -> np.ndarray:
        """The cross-encoder's in-scope logit of each (edit, query) pair, in batches."""
        if not edit_texts:
            return np.empty(0, dtype=np.float32)
        logits = torch.cat(
            [
                self.classifier.score_pairs(edit_texts[i : i + self.batch_size], query_texts[i : i + self.batch_size])
                for i in range(0, len(edit_texts), self.batch_size)
            ]
        )
        return logits.float().cpu().numpy()


def _logit(probability: float) -> float:
    if probability <= 0.0:
        return -math.inf
    if probability >= 1.0:
        return math.inf
    return math.log(probability / (1.0 - probability))


def _subject(edit) -> str:
    """The subject an edit was stored with, lower-cased; "" when it has none."""
    return ((edit.metadata or {}).get("subject") or "").strip().lower()


def _names_subject(query: str, edit) -> bool:
    """Whether `query` names the edit's subject (always, for an edit stored without one)."""
    subject = _subject(edit)
    return not subject or subject in query.lower()
