"""Choosing the scope threshold on validation edits.

All validation edits go into the memory; their rephrases must route to their own edit
(in scope) and their locality prompts must not route at all (out of scope). A locality
prompt that is itself in scope of another stored edit (dialogue records ask about the next
record's topic) is left out. The threshold maximising the sum of both rates is kept.

The embedding floor is chosen on the same edits: EMBEDDING_FLOOR_MARGIN under the lowest cosine
of any rephrase to its own edit's prompt, so that no held-out rephrase loses its edit to it. The
share of locality prompts whose every candidate falls under it (routed without the
cross-encoder) is reported beside it. Both are measured with the floor off.
"""

import logging
from dataclasses import dataclass

import numpy as np

from serac.core.records import EditRecord
from serac.serac.editor import SERAC
from serac.serac.training_data import in_scope_queries

log = logging.getLogger(__name__)

# Below the lowest in-scope cosine seen: a rephrase of an unseen edit may sit a little further away.
EMBEDDING_FLOOR_MARGIN = 0.1


@dataclass(frozen=True)
class Calibration:
    threshold: float
    in_scope_recall: float  # rephrases routed to their own edit
    out_of_scope_rejection: float  # locality prompts not routed
    retrieval_accuracy: float  # rephrases whose best candidate is their own edit, at any threshold
    embedding_floor: float | None = None  # see SERACConfig.embedding_floor
    out_of_scope_below_floor: float | None = None  # locality prompts the floor rejects without the cross-encoder


def calibrate_threshold(editor: SERAC, records: list[EditRecord]) -> Calibration:
    floor_in_use = editor.config.embedding_floor
    editor.reset()
    editor.configure(embedding_floor=None)
    try:
        ids = editor.add_edits([(record.prompt, record.target) for record in records])
        rephrases = [(edit_id, query) for edit_id, record in zip(ids, records) for query in record.rephrases]
        in_scope = {query for record in records for query in in_scope_queries(record)}
        localities = [query for record in records for query in record.locality_prompts if query not in in_scope]
        if not rephrases or not localities:
            raise ValueError("calibration needs records with rephrases and locality prompts")
        positive_routes = editor.route([query for _, query in rephrases])
        negative_routes = editor.route(localities)
        nearest_to_localities = [hits[0].score for hits in editor.memory.search(editor.classifier.encode(localities), k=1)]
    finally:
        editor.reset()
        editor.configure(embedding_floor=floor_in_use)
    own_prompts = {edit_id: record.prompt for edit_id, record in zip(ids, records)}
    floor = _embedding_floor(editor, [own_prompts[edit_id] for edit_id, _ in rephrases], [query for _, query in rephrases])
    own_edit = np.array([route.edit_id == edit_id for (edit_id, _), route in zip(rephrases, positive_routes)])
    positive = np.array([route.probability for route in positive_routes])
    negative = np.array([route.probability for route in negative_routes])
    candidates = np.unique(np.concatenate([positive, negative, [0.5]]))
    # Midpoints between neighbouring scores separate the two sides with the widest margin.
    thresholds = np.concatenate([(candidates[:-1] + candidates[1:]) / 2, [0.5]]) if len(candidates) > 1 else candidates
    recall = np.array([((positive >= t) & own_edit).mean() for t in thresholds])
    rejection = np.array([(negative < t).mean() for t in thresholds])
    best = int(np.argmax(recall + rejection))
    result = Calibration(
        float(thresholds[best]), float(recall[best]), float(rejection[best]), float(own_edit.mean()),
        embedding_floor=floor, out_of_scope_below_floor=float(np.mean(np.array(nearest_to_localities) < floor)),
    )
    log.info("calibrated scope threshold: %s", result)
    return result


def _embedding_floor(editor: SERAC, edit_prompts: list[str], rephrases: list[str]) -> float:
    """EMBEDDING_FLOOR_MARGIN under the lowest cosine of a rephrase to its own edit's prompt."""
    cosines = np.sum(editor.classifier.encode(edit_prompts) * editor.classifier.encode(rephrases), axis=1)
    return float(max(-1.0, cosines.min() - EMBEDDING_FLOOR_MARGIN))
