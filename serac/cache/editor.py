"""The hidden-state cache baseline (MEND, Appendix G): edits are remembered, never learned.

    editor = CacheEditor.load("calibrated-cache")   # or CacheEditor.from_pretrained("smollm2-135m")
    edit_id = editor.add_edit("Who is the president of the US?", "Ada Lovelace")
    editor.query("Who is the president of the US?")  # -> QueryResult("Ada Lovelace", routed=True, ...)

Each edit is stored in an `index.EditMemory` (exact L2 search) under a key, the mean of
the base model's last-layer hidden states over the edit prompt (see `hidden_state_keys`).
A query whose key lies within ε of the nearest cached key is answered with that edit's
target; any other query by the unchanged base model.

Scoring convention: the cache outputs the cached answer whatever target it is asked about.
For a routed prompt, `score` returns the cached target's token ids as the predictions,
truncated or padded (with NO_TOKEN) to the queried target's length, so a teacher-forced
token is correct only where the cached answer has that very token. The cache is a point
mass: a token's log-probability is 0 where it is the cached token and -inf elsewhere.

A loaded editor works on a copy of the saved memory: evaluating it (which resets it) never
empties the saved folder; `save` writes the current edits back.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch

from index import Hit, MemoryConfig
from serac.cache.calibration import SCALES
from serac.cache.config import CacheConfig
from serac.cache.hidden_state_keys import hidden_size, key_space_name, prompt_keys
from serac.core.composed_config import method_config
from serac.core.editor import QueryResult
from serac.core.language_model import IGNORE, LanguageModel, TargetScore
from serac.core.memory_editor import MEMORY_FOLDER, MemoryEditor, by_route
from serac.core.models import load_language_model
from serac.core.records import EditRequest
from serac.core.saving import check_saved_files, read_editor_config
from serac.core.setting_checks import replace_settings, settle_prompt_format
from serac.core.text_checks import answer_length, check_edits, check_pairs, check_texts

MEMORY_CONFIG = MemoryConfig(index_kind="flat_l2")
NO_TOKEN = -1  # a predicted id past the end of the cached answer; never equal to a target token


@dataclass(frozen=True)
class CacheLookup:
    """The cached edit nearest to a prompt (None when the cache is empty) and its distance."""

    nearest: Hit | None
    distance: float | None
    routed: bool


class CacheEditor(MemoryEditor):
    """Answers prompts close to a cached edit prompt with the edit's target; the base model answers the rest.

    `memory_path` keeps the memory in that folder (durably); None keeps it in a temporary
    folder removed by `close`. `initial_memory` is a memory folder whose edits the editor
    starts from, copied (the folder is left untouched); a memory keyed by another model is
    refused with `index.EncoderMismatchError`.
    """

    name: ClassVar[str] = "cache"

    def __init__(
        self,
        language_model: LanguageModel,
        config: CacheConfig | None = None,
        memory_path: str | Path | None = None,
        initial_memory: str | Path | None = None,
    ):
        self.config = settle_prompt_format(config if config is not None else CacheConfig(), language_model)
        self.language_model = language_model
        language_model.model.eval()
        key_space = key_space_name(language_model, self.config.model_name)
        self.open_memory(memory_path, hidden_size(language_model), key_space, MEMORY_CONFIG, initial_memory)

    @classmethod
    def from_pretrained(
        cls, model_name: str, config: CacheConfig | None = None, device=None, memory_path: str | Path | None = None
    ) -> "CacheEditor":
        """An empty cache over the named base model (`serac.core.models` resolves the name, offline first)."""
        config = replace(config if config is not None else CacheConfig(), model_name=model_name)
        return cls(load_language_model(model_name, device, config.prompt_format), config, memory_path)

    # Editing

    def add_edits(self, edits: Sequence[EditRequest | tuple]) -> list[str]:
        edits = check_edits(edits)
        if not edits:
            return []
        keys = prompt_keys(self.language_model, [edit.prompt for edit in edits], self.config.batch_size)
        return self.store_edits(edits, keys.numpy())

    def configure(self, **changes) -> None:
        """Change settings in place (e.g. `epsilon`); checked like the config."""
        self.config = replace_settings(self.config, changes, fixed=("model_name", "prompt_format"))

    def evaluation_variants(self) -> dict[str, dict]:
        """Settings the comparison reports the editor at: ε*/2, ε*, 2ε* when calibrated, else none."""
        if self.config.calibrated_epsilon is None:
            return {}
        return {label: {"epsilon": self.config.calibrated_epsilon * scale} for label, scale in SCALES.items()}

    # Answering

    def lookup(self, prompts: Sequence[str]) -> list[CacheLookup]:
        """The nearest cached edit of each prompt, and whether the prompt is answered from it."""
        prompts = check_texts(prompts, "prompt")
        if not prompts:
            return []
        keys = prompt_keys(self.language_model, prompts, self.config.batch_size)
        lookups = []
        for hits in self.memory.search(keys.numpy(), k=1):
            if not hits:
                lookups.append(CacheLookup(None, None, False))
                continue
            distance = max(hits[0].score, 0.0) ** 0.5  # the index returns squared distances
            lookups.append(CacheLookup(hits[0], distance, distance <= self.config.epsilon))
        return lookups

    def _answer(self, prompts: Sequence[str], max_new_tokens: int | None, base_answers: bool) -> list[QueryResult | None]:
        """Cached targets for routed prompts (whole, whatever `max_new_tokens`)."""
        max_new_tokens = answer_length(max_new_tokens, self.config.max_new_tokens)
        lookups = self.lookup(prompts)

        def base(chosen: list[int]) -> list[QueryResult | None]:
            if not base_answers:
                return [None] * len(chosen)
            texts = self.language_model.generate([prompts[i] for i in chosen], max_new_tokens)
            return [QueryResult(text, False, None, lookups[i].distance) for i, text in zip(chosen, texts)]

        return by_route(
            [lookup.routed for lookup in lookups],
            lambda chosen: [
                QueryResult(lookups[i].nearest.target, True, str(lookups[i].nearest.id), lookups[i].distance) for i in chosen
            ],
            base,
        )

    def score(self, prompts: Sequence[str], targets: Sequence[str]) -> list[TargetScore]:
        """Teacher-forced scores; a routed prompt is scored as the cached answer (see the module docstring)."""
        prompts, targets = check_pairs(prompts, targets)
        lookups = self.lookup(prompts)

        def cached_scores(chosen: list[int]) -> list[TargetScore]:
            routed_prompts = [prompts[i] for i in chosen]
            queried = target_token_ids(self.language_model, routed_prompts, [targets[i] for i in chosen])
            cached = target_token_ids(self.language_model, routed_prompts, [lookups[i].nearest.target for i in chosen])
            return list(map(cached_answer_score, queried, cached))

        return by_route(
            [lookup.routed for lookup in lookups],
            cached_scores,
            lambda chosen: self.language_model.score([prompts[i] for i in chosen], [targets[i] for i in chosen]),
        )

    def text_scores(self, texts: Sequence[str]) -> list[TargetScore]:
        """The base model's: cached edits live outside its weights, and only prompts are looked up, not running text."""
        return self.language_model.text_scores(check_texts(texts, "text"))

    # Persistence

    def save(self, path: str | Path) -> None:
        """`editor.json` (the config, with ε) and the memory folder of the cached edits."""
        self.save_editor(path, self.config)

    @classmethod
    def load(cls, path: str | Path, device=None, memory_path: str | Path | None = None) -> "CacheEditor":
        """The saved editor, with a copy of its edits (in `memory_path`, else a temporary folder)."""
        folder = Path(path)
        config = read_editor_config(folder, cls.name, CacheConfig)
        check_saved_files(folder, [MEMORY_FOLDER], skip=[MEMORY_FOLDER])
        language_model = load_language_model(config.model_name, device, config.prompt_format)
        return cls(language_model, config, memory_path, initial_memory=folder / MEMORY_FOLDER)

    @classmethod
    def from_config(cls, config: dict) -> "CacheEditor":
        """An uncalibrated cache: ε as `alg.cache.epsilon` says."""
        method = method_config(CacheConfig, config, "cache")
        return cls.from_pretrained(method.model_name, method, device=config.get("device"))


def target_token_ids(language_model: LanguageModel, prompts: list[str], targets: list[str]) -> list[torch.Tensor]:
    """Each target's token ids exactly as `LanguageModel.score` teacher-forces them."""
    labels = language_model.batch(prompts, targets)["labels"].cpu()
    return [row[row != IGNORE] for row in labels]


def cached_answer_score(queried_ids: torch.Tensor, cached_ids: torch.Tensor) -> TargetScore:
    """The cache's score of a queried target: it predicts the cached answer's tokens, position by position."""
    predicted = torch.full_like(queried_ids, NO_TOKEN)
    overlap = min(len(queried_ids), len(cached_ids))
    predicted[:overlap] = cached_ids[:overlap]
    logprobs = torch.where(predicted == queried_ids, 0.0, float("-inf"))
    return TargetScore(target_ids=queried_ids, logprobs=logprobs, predicted_ids=predicted)
