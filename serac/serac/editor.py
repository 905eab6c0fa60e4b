"""The SERAC editor: the frozen base model, an edit memory, a scope classifier and a counterfactual model.

    editor = SERAC.load("trained-serac")            # or SERAC.from_pretrained(SERACConfig(...))
    edit_id = editor.add_edit("Who is the president of the US?", "Ada Lovelace")
    editor.query("Who leads the United States?")   # -> QueryResult(text="Ada Lovelace", routed=True, ...)

Edits live in an `index.EditMemory` (SQLite + FAISS). A loaded editor keeps adding edits
to the memory inside the folder it was loaded from, durably; an editor built from scratch
keeps them in a temporary folder unless `memory_path` is given.
"""

from collections.abc import Sequence
from pathlib import Path

import torch

from index import MemoryConfig
from serac.core.composed_config import method_config
from serac.core.device import pick_device
from serac.core.editor import QueryResult
from serac.core.language_model import LanguageModel, TargetScore
from serac.core.memory_editor import MEMORY_FOLDER, MemoryEditor, by_route
from serac.core.models import load_language_model
from serac.core.records import EditRequest
from serac.core.saving import NotASavedEditorError, check_saved_files, read_editor_config
from serac.core.setting_checks import replace_settings, settle_prompt_format
from serac.core.text_checks import answer_length, check_edits, check_pairs, check_texts
from serac.serac.config import SERACConfig
from serac.serac.counterfactual import CounterfactualModel
from serac.serac.encoder_backends import inference_cross_encoder, inference_encoder
from serac.serac.router import Route, Router
from serac.serac.scope_classifier import CLASSIFIER_FILES, ScopeClassifier
from serac.serac.single_file_classifier import SINGLE_FILE, load_single_file_classifier

CLASSIFIER_FOLDER = "scope_classifier"
COUNTERFACTUAL_FOLDER = "counterfactual"


class SERAC(MemoryEditor):
    name = "serac"

    def __init__(
        self,
        config: SERACConfig,
        base: LanguageModel,
        counterfactual: CounterfactualModel,
        classifier: ScopeClassifier,
        memory_path: str | Path | None = None,
    ):
        self.config = settle_prompt_format(config, base)
        self.base = base
        self.counterfactual = counterfactual
        self.classifier = classifier.eval()
        classifier.use_fast_encoder(inference_encoder(classifier.embedder, config.encoder_backend))
        classifier.use_fast_cross_encoder(inference_cross_encoder(classifier.cross_encoder, config.cross_encoder_backend))
        self.open_memory(memory_path, classifier.dim, classifier.fingerprint(), MemoryConfig(index_kind=config.index_kind, ivf_storage=config.ivf_storage))
        self.router = Router(classifier, self.memory, config)

    @classmethod
    def from_pretrained(cls, config: SERACConfig | None = None, device=None, memory_path=None) -> "SERAC":
        """A SERAC editor whose components start from the configured pretrained models (untrained)."""
        config = config or SERACConfig()
        device = pick_device(device)
        base = load_language_model(config.model_name, device, config.prompt_format)
        counterfactual = CounterfactualModel(load_language_model(config.counterfactual_model, device, config.prompt_format))
        classifier = ScopeClassifier.from_backbone(config.classifier_backbone, config.max_classifier_tokens).to(device)
        return cls(config, base, counterfactual, classifier, memory_path)

    # -- edits -------------------------------------------------------------------------

    def add_edits(self, edits: Sequence[EditRequest | tuple]) -> list[str]:
        edits = check_edits(edits)
        if not edits:
            return []
        return self.store_edits(edits, self.classifier.encode([edit.prompt for edit in edits]))

    # -- answers -----------------------------------------------------------------------

    def route(self, prompts: Sequence[str]) -> list[Route]:
        """Which stored edit, if any, covers each prompt."""
        return self.router.route(check_texts(prompts, "prompt"))

    def _answer(self, prompts: Sequence[str], max_new_tokens: int | None, base_answers: bool) -> list[QueryResult | None]:
        """In-scope prompts answered by the counterfactual model; the others by the base model, or None."""
        max_new_tokens = answer_length(max_new_tokens, self.config.max_new_tokens)
        routes = self.route(prompts)
        answers = self._by_route(
            prompts,
            routes,
            on_edit=lambda edits, queries, _: self.counterfactual.generate(edits, queries, max_new_tokens),
            on_base=lambda queries, _: self.base.generate(queries, max_new_tokens=max_new_tokens) if base_answers else [None] * len(queries),
        )
        return [
            QueryResult(text, route.in_scope, route.edit_id if route.in_scope else None, route.probability) if text is not None else None
            for text, route in zip(answers, routes)
        ]

    def score(self, prompts: Sequence[str], targets: Sequence[str]) -> list[TargetScore]:
        prompts, targets = check_pairs(prompts, targets)
        return self._by_route(
            prompts,
            self.route(prompts),
            targets=targets,
            on_edit=lambda edits, queries, chosen: self.counterfactual.score(edits, queries, chosen),
            on_base=lambda queries, chosen: self.base.score(queries, chosen),
        )

    def target_logprobs(self, prompts: Sequence[str], targets: Sequence[str]) -> list[torch.Tensor]:
        prompts, targets = check_pairs(prompts, targets)
        return self._by_route(
            prompts,
            self.route(prompts),
            targets=targets,
            on_edit=self.counterfactual.target_logprobs,
            on_base=self.base.target_logprobs,
        )

    def text_scores(self, texts: Sequence[str]) -> list[TargetScore]:
        """The base model's: SERAC's edits live outside its weights, and the router routes queries, not running text."""
        return self.base.text_scores(check_texts(texts, "text"))

    @staticmethod
    def _by_route(prompts, routes, on_edit, on_base, targets=None) -> list:
        """In-scope prompts go to the counterfactual model with their edit, the rest to the base model."""
        targets = list(targets) if targets is not None else [None] * len(prompts)
        return by_route(
            [route.in_scope for route in routes],
            lambda chosen: on_edit(
                [(routes[i].prompt, routes[i].target) for i in chosen], [prompts[i] for i in chosen], [targets[i] for i in chosen]
            ),
            lambda chosen: on_base([prompts[i] for i in chosen], [targets[i] for i in chosen]),
        )

    # -- persistence -------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """`editor.json`, the scope classifier, the counterfactual model and the memory (see `MemoryEditor.save_editor`)."""
        self.save_editor(path, self.config, self._write_weights)

    def _write_weights(self, folder: Path) -> None:
        self.classifier.save(folder / CLASSIFIER_FOLDER)
        self.counterfactual.lm.model.save_pretrained(folder / COUNTERFACTUAL_FOLDER)
        self.counterfactual.lm.tokenizer.save_pretrained(folder / COUNTERFACTUAL_FOLDER)

    @classmethod
    def from_config(cls, config: dict) -> "SERAC":
        return cls.from_pretrained(method_config(SERACConfig, config, "serac"), device=config.get("device"))

    @classmethod
    def load(cls, path: str | Path, device=None) -> "SERAC":
        folder = Path(path)
        config = read_editor_config(folder, cls.name, SERACConfig)
        # Editors saved before the sentence-transformers heads hold one classifier file.
        single_file = not (folder / CLASSIFIER_FOLDER).exists() and (folder / SINGLE_FILE).exists()
        classifier_files = [SINGLE_FILE] if single_file else [f"{CLASSIFIER_FOLDER}/{name}" for name in CLASSIFIER_FILES]
        check_saved_files(
            folder,
            [*classifier_files, f"{COUNTERFACTUAL_FOLDER}/config.json", MEMORY_FOLDER],
            skip=[MEMORY_FOLDER],
        )
        device = pick_device(device)
        base = load_language_model(config.model_name, device, config.prompt_format)
        try:
            if single_file:
                classifier = load_single_file_classifier(folder / SINGLE_FILE, config.classifier_backbone, config.max_classifier_tokens)
            else:
                classifier = ScopeClassifier.load(folder / CLASSIFIER_FOLDER, config.classifier_backbone, config.max_classifier_tokens)
            counterfactual = CounterfactualModel(load_language_model(str(folder / COUNTERFACTUAL_FOLDER), device, config.prompt_format))
        except (OSError, ValueError, RuntimeError) as error:
            raise NotASavedEditorError(f"{folder} holds weights that do not load: {error}") from error
        return cls(config, base, counterfactual, classifier.to(device), memory_path=folder / MEMORY_FOLDER)

    def configure(self, **changes) -> None:
        """Change routing settings in place (threshold, top_k, conflicts, ...); checked like the config."""
        # max_classifier_tokens is fixed too: the stored edits were embedded with it (it used to be
        # accepted and silently ignored).
        fixed = (
            "model_name", "counterfactual_model", "classifier_backbone", "prompt_format", "index_kind",
            "max_classifier_tokens", "encoder_backend", "cross_encoder_backend", "ivf_storage",
        )
        self.config = replace_settings(self.config, changes, fixed)
        self.router.config = self.config

    def evaluation_variants(self) -> dict[str, dict]:
        """The comparison reports both ways of settling edits that conflict (see `SERACConfig.conflicts`)."""
        return {"newest": {"conflicts": "newest"}, "closest": {"conflicts": "closest"}}
