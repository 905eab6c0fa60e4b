"""The SERAC editor: the frozen base model, an edit memory, a scope classifier and a counterfactual model.

    editor = SERAC.load("trained-serac")            # or SERAC.from_pretrained(SERACConfig(...))
    edit_id = editor.add_edit("Who is the president of the US?", "Ada Lovelace")
    editor.query("Who leads the United States?")   # -> QueryResult(text="Ada Lovelace", routed=True, ...)

Edits live in an `index.EditMemory` (SQLite + FAISS). A loaded editor keeps adding edits
to the memory inside the folder it was loaded from, durably; an editor built from scratch
keeps them in a temporary folder unless `memory_path` is given.
"""

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from index import EditMemory, MemoryConfig
from serac.core.device import pick_device
from serac.core.editor import Editor, QueryResult
from serac.core.experiment import training_records
from serac.core.language_model import LanguageModel, TargetScore
from serac.core.models import load_model as load_language_model
from serac.core.models import load_tokenizer
from serac.core.saving import read_editor_config, write_editor_config
from serac.core.text_checks import answer_length, check_edits, check_pairs, check_text
from serac.method.config import SERACConfig
from serac.method.counterfactual import CounterfactualModel
from serac.method.router import Route, Router
from serac.method.scope_classifier import ScopeClassifier

CLASSIFIER_FILE = "scope_classifier.safetensors"
COUNTERFACTUAL_FOLDER = "counterfactual"
MEMORY_FOLDER = "memory"


class SERAC(Editor):
    name = "serac"

    def __init__(
        self,
        config: SERACConfig,
        base: LanguageModel,
        counterfactual: CounterfactualModel,
        classifier: ScopeClassifier,
        memory_path: str | Path | None = None,
    ):
        self.config = config
        self.base = base
        self.counterfactual = counterfactual
        self.classifier = classifier.eval()
        self._temporary_memory = memory_path is None
        folder = Path(memory_path) if memory_path else Path(tempfile.mkdtemp(prefix="serac-memory-"))
        self.memory = EditMemory(
            folder, dim=classifier.dim, encoder_name=classifier.fingerprint(), config=MemoryConfig(index_kind=config.index_kind)
        )
        self.router = Router(classifier, self.memory, config)

    @classmethod
    def from_pretrained(cls, config: SERACConfig | None = None, device=None, memory_path=None) -> "SERAC":
        """A SERAC editor whose components start from the configured pretrained models (untrained)."""
        config = config or SERACConfig()
        device = pick_device(device)
        base = language_model_for(config.base_model, config, device)
        counterfactual = CounterfactualModel(language_model_for(config.counterfactual_model, config, device))
        classifier = ScopeClassifier(config.classifier_backbone, config.max_classifier_tokens).to(device)
        return cls(config, base, counterfactual, classifier, memory_path)

    # -- edits -------------------------------------------------------------------------

    def add_edits(self, edits: Sequence[tuple[str, str]]) -> list[int]:
        edits = check_edits(edits)
        if not edits:
            return []
        vectors = self.router.embed([prompt for prompt, _ in edits])
        return self.memory.add_many([prompt for prompt, _ in edits], [target for _, target in edits], vectors)

    def edit_ids(self) -> list[int]:
        return [edit.id for edit in self.memory.list()]

    def remove_edit(self, edit_id: int) -> None:
        self.memory.remove(edit_id)

    def reset(self) -> None:
        self.memory.clear()

    # -- answers -----------------------------------------------------------------------

    def route(self, prompts: Sequence[str]) -> list[Route]:
        """Which stored edit, if any, covers each prompt."""
        return self.router.route([check_text(prompt, "prompt") for prompt in prompts])

    def query_batch(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[QueryResult]:
        max_new_tokens = answer_length(max_new_tokens, self.config.max_new_tokens)
        routes = self.route(prompts)
        answers = self._by_route(
            prompts,
            routes,
            on_edit=lambda edits, queries, _: self.counterfactual.generate(edits, queries, max_new_tokens),
            on_base=lambda queries, _: self.base.generate(queries, max_new_tokens=max_new_tokens),
        )
        return [
            QueryResult(text, route.in_scope, route.edit_id if route.in_scope else None, route.probability)
            for text, route in zip(answers, routes)
        ]

    def score(self, prompts: Sequence[str], targets: Sequence[str]) -> list[TargetScore]:
        if len(prompts) != len(targets):
            raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
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

    @staticmethod
    def _by_route(prompts, routes, on_edit, on_base, targets=None) -> list:
        """Send in-scope prompts to the counterfactual model and the rest to the base model, keeping order."""
        targets = list(targets) if targets is not None else [None] * len(prompts)
        routed = [i for i, route in enumerate(routes) if route.in_scope]
        unrouted = [i for i, route in enumerate(routes) if not route.in_scope]
        results = [None] * len(prompts)
        if routed:
            edits = [(routes[i].prompt, routes[i].target) for i in routed]
            for i, result in zip(routed, on_edit(edits, [prompts[i] for i in routed], [targets[i] for i in routed])):
                results[i] = result
        if unrouted:
            for i, result in zip(unrouted, on_base([prompts[i] for i in unrouted], [targets[i] for i in unrouted])):
                results[i] = result
        return results

    # -- persistence -------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        folder = write_editor_config(path, self.name, self.config)
        save_model(self.classifier, str(folder / CLASSIFIER_FILE))
        self.counterfactual.lm.model.save_pretrained(folder / COUNTERFACTUAL_FOLDER)
        self.counterfactual.lm.tokenizer.save_pretrained(folder / COUNTERFACTUAL_FOLDER)
        target_memory = folder / MEMORY_FOLDER
        if target_memory.resolve() != self.memory.path.resolve():
            shutil.rmtree(target_memory, ignore_errors=True)
            self.memory.copy_to(target_memory)
        else:
            self.memory.flush()

    @classmethod
    def from_config(cls, config: dict) -> "SERAC":
        return cls.from_pretrained(serac_config(config), device=config.get("device"))

    @classmethod
    def train_from_config(cls, config: dict, output_dir: Path) -> Path:
        # Imported here: training builds a SERAC editor, so train.py imports this module.
        from serac.method.train import SERACTraining, train_serac

        alg = config["alg"]
        setup = SERACTraining(
            config=serac_config(config),
            classifier=alg["classifier_training"],
            counterfactual=alg["counterfactual_training"],
            hard_negatives_per_edit=alg["hard_negatives_per_edit"],
            preference_weight=alg["preference_weight"],
            seed=config.get("seed", 0),
        )
        train_records, val_records = training_records(config)
        return train_serac(setup, train_records, val_records, output_dir, device=config.get("device"))

    @classmethod
    def load(cls, path: str | Path, device=None) -> "SERAC":
        folder = Path(path)
        config = read_editor_config(folder, cls.name, SERACConfig)
        device = pick_device(device)
        classifier = ScopeClassifier(config.classifier_backbone, config.max_classifier_tokens)
        load_model(classifier, str(folder / CLASSIFIER_FILE))
        counterfactual_folder = str(folder / COUNTERFACTUAL_FOLDER)
        counterfactual = CounterfactualModel(language_model_for(counterfactual_folder, config, device))
        base = language_model_for(config.base_model, config, device)
        return cls(config, base, counterfactual, classifier.to(device), memory_path=folder / MEMORY_FOLDER)

    def configure(self, **changes) -> None:
        """Change routing settings in place (threshold, top_k, conflicts, ...); checked like the config."""
        fixed = {"base_model", "counterfactual_model", "classifier_backbone", "prompt_format", "index_kind"}
        known = {field.name for field in dataclasses.fields(SERACConfig)} - fixed
        if set(changes) - known:
            raise ValueError(f"cannot change {sorted(set(changes) - known)} on a built editor; settable: {sorted(known)}")
        self.config = dataclasses.replace(self.config, **changes)
        self.router.config = self.config

    def evaluation_variants(self) -> dict[str, dict]:
        """The comparison reports both ways of settling edits that conflict (see `SERACConfig.conflicts`)."""
        return {"newest": {"conflicts": "newest"}, "closest": {"conflicts": "closest"}}

    def close(self) -> None:
        self.memory.close()
        if self._temporary_memory:
            shutil.rmtree(self.memory.path, ignore_errors=True)


def serac_config(config: dict) -> SERACConfig:
    """SERACConfig from the composed CLI config: the base model comes from `model`, the rest from `alg.serac`."""
    fields = dict(config["alg"]["serac"])
    fields["base_model"] = config["model"]["name"]
    fields["prompt_format"] = config["model"]["prompt_format"]
    fields["counterfactual_model"] = fields.get("counterfactual_model") or config["model"]["name"]
    return SERACConfig(**fields)


def language_model_for(name: str, config: SERACConfig, device: torch.device) -> LanguageModel:
    return LanguageModel(load_language_model(name, device), load_tokenizer(name), device, config.prompt_format)
