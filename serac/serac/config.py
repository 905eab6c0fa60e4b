"""SERAC's configuration."""

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class SERACConfig:
    # Editors saved before the package's layout move called the base model `base_model`.
    renamed_fields: ClassVar[dict[str, str]] = {"base_model": "model_name"}

    model_name: str = "smollm2-135m"  # the frozen base model
    # The counterfactual model starts from these weights (None: the base model's; a trained
    # one is saved with the editor).
    counterfactual_model: str | None = None
    classifier_backbone: str = "all-minilm-l6-v2"
    prompt_format: str = "plain"  # "chat" wraps every prompt in the model's chat template (dialogue)
    # Routing: FAISS returns `top_k` candidate edits by embedding score, the cross-encoder
    # re-scores them, and a query is in scope when the best probability reaches `threshold`.
    top_k: int = 5
    threshold: float = 0.5
    rerank: bool = True  # False: route on the embedding score alone
    # "faiss" searches the memory's vector index; "exhaustive" scores every stored edit with
    # the cross-encoder, as the original SERAC did (kept for comparison in benchmarks/).
    retrieval: str = "faiss"
    # Several stored edits can cover one query when a fact was edited more than once.
    # "newest": the newest edit whose in-scope logit is within `conflict_margin` of the best
    # answers (a later edit supersedes earlier ones, whatever their phrasing); "closest": an
    # edit of exactly the query, else the best-scoring edit answers (the original SERAC).
    conflicts: str = "newest"
    conflict_margin: float = 2.0
    index_kind: str = "flat"
    max_classifier_tokens: int = 128
    max_new_tokens: int = 20

    def __post_init__(self):
        if self.counterfactual_model is None:
            self.counterfactual_model = self.model_name
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {self.threshold}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.retrieval not in ("faiss", "exhaustive"):
            raise ValueError(f"retrieval must be 'faiss' or 'exhaustive', got {self.retrieval!r}")
        if self.conflicts not in ("newest", "closest"):
            raise ValueError(f"conflicts must be 'newest' or 'closest', got {self.conflicts!r}")
        if self.conflict_margin < 0:
            raise ValueError(f"conflict_margin must be non-negative, got {self.conflict_margin}")
        if self.retrieval == "exhaustive" and not self.rerank:
            raise ValueError("exhaustive retrieval scores every edit with the cross-encoder: it needs rerank=True")
