"""SERAC's configuration: every setting is checked when the config is built, by `configure`
and when a saved editor is loaded, against the limits in `serac.core.setting_checks`."""

import math
from dataclasses import dataclass
from typing import ClassVar

from index import INDEX_KINDS, IVF_STORAGES
from serac.serac.encoder_backends import CROSS_ENCODER_BACKENDS, ENCODER_BACKENDS
from serac.core.setting_checks import (
    MAX_CLASSIFIER_TOKENS,
    MAX_NEW_TOKENS,
    MAX_TOP_K,
    PROMPT_FORMATS,
    SettingsError,
    check_bool,
    check_choice,
    check_int,
    check_name,
    check_real,
)


@dataclass
class SERACConfig:
    # Editors saved before the package's layout move called the base model `base_model`.
    renamed_fields: ClassVar[dict[str, str]] = {"base_model": "model_name"}
    # Editors saved before a setting existed load with the value it had then, not today's default.
    saved_before_field: ClassVar[dict[str, object]] = {"encoder_backend": "torch"}
    # Settings of routing and inference only: training does not read them, so a training run
    # resumes whatever they are (serac.serac.train leaves them out of the run's identity).
    inference_settings: ClassVar[tuple[str, ...]] = (
        "top_k", "threshold", "embedding_floor", "rerank", "retrieval", "conflicts", "conflict_margin", "subject_scope",
        "index_kind", "ivf_storage", "encoder_backend", "cross_encoder_backend", "max_new_tokens",
    )

    model_name: str = "smollm2-135m"  # the frozen base model
    # The counterfactual model starts from these weights (None: the base model's; a trained
    # one is saved with the editor).
    counterfactual_model: str | None = None
    classifier_backbone: str = "all-minilm-l6-v2"
    prompt_format: str = "auto"  # "chat": the model's chat template; "auto": chat when the tokenizer has a template
    # Routing: FAISS returns `top_k` (1..1000) candidate edits by embedding score, the cross-encoder
    # re-scores them, and a query is in scope when the best probability reaches `threshold` (a float in [0, 1]).
    top_k: int = 5
    threshold: float = 0.5
    # A candidate whose embedding cosine to the query is below this is out of scope without the
    # cross-encoder (a query with no candidate left costs one embedding and one search). Calibrated
    # with the threshold: under the lowest cosine of any held-out rephrase to its own edit, less a
    # margin (serac.serac.calibration). None: every candidate is re-scored.
    embedding_floor: float | None = None
    rerank: bool = True  # False: route on the embedding score alone
    # "faiss" searches the memory's vector index; "exhaustive" scores every stored edit with
    # the cross-encoder, as the original SERAC did (kept for comparison in benchmarks/).
    retrieval: str = "faiss"
    # Several stored edits can cover one query when a fact was edited more than once.
    # "closest": an edit of exactly the query, else the best-scoring edit answers (the original
    # SERAC); "newest": a newer edit of the same fact supersedes it, whatever its phrasing: one
    # in scope of the query within `conflict_margin` of the best logit whose own prompt and the
    # closest edit's prompt are each in the other's scope (so a newer look-alike edit of another
    # fact does not answer). Under either policy the best-scoring edit is, among those in scope
    # within `conflict_margin` of the best logit, the nearest to the query by embedding.
    conflicts: str = "newest"
    conflict_margin: float = 2.0  # a finite logit difference >= 0
    # True: an edit given with its subject covers only queries that name that subject (case-insensitive
    # substring), whatever the classifier says, and two edits of different subjects are never one
    # fact. A prior for edits about named entities: it refuses CounterFact's neighbours (same relation,
    # another subject), which a cross-encoder can score in scope, and a query naming the subject by
    # an alias. Edits without a subject are routed as before.
    subject_scope: bool = False
    # "auto": exact search while the memory is small, an IVF index trained in the background
    # past 50,000 edits (see index.MemoryConfig); "flat", "ivf", "hnsw" fix the kind.
    index_kind: str = "auto"
    # "auto"'s IVF index: edit vectors in 8 bits a dimension ("sq8": a quarter of the memory,
    # faster, hits re-scored exactly from the store) or float32 ("flat"); see index.MemoryConfig.
    ivf_storage: str = "sq8"
    max_classifier_tokens: int = 128  # 1..512 tokens of (edit, query) read by the classifier
    # How edits and queries are embedded at inference (serac.serac.encoder_backends): "auto"
    # (bf16 autocast where the device multiplies bf16 natively, else ONNX Runtime on a CPU with
    # the `onnx` extra, else float32 torch), "torch", "torch-bf16" (the same vector space), or
    # ONNX Runtime ("onnx", the same vectors; "onnx-int8": faster, vectors move a little and are
    # a space of their own; both need the `onnx` extra).
    encoder_backend: str = "auto"
    # How routing scores (edit, query) pairs: "torch", "onnx" (the same logits, faster on a CPU;
    # the `onnx` extra), "auto" ("onnx" on a CPU where it is installed, else "torch").
    cross_encoder_backend: str = "auto"
    max_new_tokens: int = 20  # 1..512: the answer length of `query` when the caller gives none

    def __post_init__(self):
        if self.counterfactual_model is None:
            self.counterfactual_model = self.model_name
        for name in ("model_name", "counterfactual_model", "classifier_backbone"):
            check_name(getattr(self, name), f"SERACConfig.{name}")
        check_choice(self.prompt_format, "SERACConfig.prompt_format", PROMPT_FORMATS)
        check_int(self.top_k, "SERACConfig.top_k", 1, MAX_TOP_K)
        self.threshold = check_real(self.threshold, "SERACConfig.threshold (a probability)", 0.0, 1.0)
        if self.embedding_floor is not None:
            self.embedding_floor = check_real(self.embedding_floor, "SERACConfig.embedding_floor (a cosine)", -1.0, 1.0)
        check_bool(self.rerank, "SERACConfig.rerank")
        check_choice(self.retrieval, "SERACConfig.retrieval", ("faiss", "exhaustive"))
        check_choice(self.conflicts, "SERACConfig.conflicts", ("newest", "closest"))
        self.conflict_margin = check_real(self.conflict_margin, "SERACConfig.conflict_margin", 0.0, math.inf)
        check_bool(self.subject_scope, "SERACConfig.subject_scope")
        check_choice(self.index_kind, "SERACConfig.index_kind", INDEX_KINDS)
        check_choice(self.ivf_storage, "SERACConfig.ivf_storage", IVF_STORAGES)
        check_choice(self.encoder_backend, "SERACConfig.encoder_backend", ENCODER_BACKENDS)
        check_choice(self.cross_encoder_backend, "SERACConfig.cross_encoder_backend", CROSS_ENCODER_BACKENDS)
        check_int(self.max_classifier_tokens, "SERACConfig.max_classifier_tokens", 1, MAX_CLASSIFIER_TOKENS)
        check_int(self.max_new_tokens, "SERACConfig.max_new_tokens", 1, MAX_NEW_TOKENS)
        if self.retrieval == "exhaustive" and not self.rerank:
            raise SettingsError("exhaustive retrieval scores every edit with the cross-encoder: it needs rerank=True")
