"""What sequential editing costs the model beyond the edited facts, and when it collapses.

A `ForgettingProbe` holds fixed inputs that no edit touches, built once, and `measure(editor)`
takes four measures through the `Editor` interface, so every editor is measured as users see it
(SERAC through its router, ROME/MEMIT/FT through their edited weights):

- `heldout_perplexity`: token perplexity of a held-out text sample, read as plain text
  (`Editor.text_scores`, never a chat template). The sample is PersonalityEdit dev's replies
  (1,800 short opinion texts of 200 topics, written in ordinary English), taken round robin over
  topics (every topic's first reply, then every second reply, ...) so a small sample spans many
  topics. Neither the statistics sample of ROME/MEMIT (`layer_statistics.sample_texts`: CounterFact
  train, zsRE train, NQ dev) nor a CounterFact or zsRE edit contains them; a PersonalityEdit
  study would edit them, so this probe is not for one.
- `unedited_true_over_false`: the share of unedited CounterFact facts (the last `facts` records
  of val) whose true object is more probable than the counterfactual one on the fact's prompt:
  CounterFact's neighbourhood score (Meng et al., 2022a) on facts no edit is about.
- `generation_fluency`: ROME's weighted bi-/tri-gram entropy (`metrics.generation_fluency`) of
  greedy generations from fixed prompts, each measured with its prompt as ROME does. ROME
  generates from CounterFact's `generation_prompts`, which the EasyEdit-format files here lack;
  the prompts of the first `generation_prompts` probe facts stand in. In the plain prompt format
  an answer ends at its first line break (`LanguageModel.generate`): what a user is shown.
- `repetitive_generations`: the share of those generations (without their prompts) whose most
  frequent word trigram occurs at least `min_trigram_repeats` times: greedy decoding stuck in a loop.

`collapse_point` reads these measures at each sequential checkpoint and returns the first number
of edits at which the model collapsed (see `CollapseThresholds`).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from serac.core import metrics
from serac.core.data import load_records
from serac.core.editor import Editor
from serac.core.records import EditRecord, EditRequest
from serac.core.setting_checks import MAX_NEW_TOKENS, SettingsError, check_int, check_real

MAX_PROBE_ITEMS = 2000  # texts or facts: beyond this a measurement at every checkpoint takes too long on a CPU
HELDOUT_DATASET, HELDOUT_SPLIT = "personality", "dev"
FACTS_DATASET, FACTS_SPLIT = "counterfact", "val"


@dataclass(frozen=True)
class ForgettingSettings:
    """How big the probe is. With the defaults one measurement of SmolLM2-135M took about a
    minute on one busy CPU thread (held-out perplexity 39.8, true over false 0.63, fluency 4.39,
    repetitive 0.15 unedited, plain prompts).

    heldout_texts:       held-out texts whose perplexity is measured (at most 1,800 in PersonalityEdit dev).
    facts:               unedited CounterFact facts, the last ones of val (edit records from its start).
    generation_prompts:  fluency prompts: the prompts of the first this many probe facts.
    generation_tokens:   new tokens generated per prompt (ROME generates up to 100 tokens, prompt included).
    min_trigram_repeats: a generation whose most frequent word trigram occurs this often is repetitive.
    data_dir:            the data folder (None: `serac.core.data.data_dir`'s default).
    """

    heldout_texts: int = 100
    facts: int = 100
    generation_prompts: int = 20
    generation_tokens: int = 50
    min_trigram_repeats: int = 3
    data_dir: str | None = None

    def __post_init__(self):
        check_int(self.heldout_texts, "heldout_texts", 1, MAX_PROBE_ITEMS)
        check_int(self.facts, "facts", 1, MAX_PROBE_ITEMS)
        check_int(self.generation_prompts, "generation_prompts (drawn from the probe facts)", 1, self.facts)
        check_int(self.generation_tokens, "generation_tokens", 1, MAX_NEW_TOKENS)
        check_int(self.min_trigram_repeats, "min_trigram_repeats", 2, 100)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise SettingsError(f"data_dir must be a path string or None, got {self.data_dir!r}")


@dataclass(frozen=True)
class ForgettingProbe:
    """The fixed inputs of the forgetting measures (see the module docstring); `build` makes one."""

    heldout_texts: tuple[str, ...]
    facts: tuple[EditRecord, ...]
    generation_prompts: tuple[str, ...]
    settings: ForgettingSettings

    @classmethod
    def build(cls, settings: ForgettingSettings | None = None) -> "ForgettingProbe":
        settings = settings or ForgettingSettings()
        texts = _round_robin_replies(load_records(HELDOUT_DATASET, HELDOUT_SPLIT, settings.data_dir))
        facts = [record for record in load_records(FACTS_DATASET, FACTS_SPLIT, settings.data_dir) if record.original_answer]
        for what, available, asked in (("held-out texts", len(texts), settings.heldout_texts), ("facts", len(facts), settings.facts)):
            if available < asked:
                raise SettingsError(f"the probe asks for {asked} {what} but the data holds only {available}")
        facts = facts[-settings.facts :]
        prompts = tuple(record.prompt for record in facts[: settings.generation_prompts])
        return cls(tuple(texts[: settings.heldout_texts]), tuple(facts), prompts, settings)

    def touches(self, edit: EditRecord | EditRequest) -> bool:
        """Whether the edit is about a probe fact (same prompt or same subject): the probe would
        then measure the edit, not forgetting."""
        return any(edit.prompt == fact.prompt or (edit.subject and edit.subject == fact.subject) for fact in self.facts)

    def check_untouched(self, edits: Sequence[EditRecord | EditRequest]) -> None:
        """ValueError if an edit is about a probe fact (see `touches`)."""
        for index, edit in enumerate(edits):
            if self.touches(edit):
                raise ValueError(f"edit {index} ({edit.prompt!r}) is about a fact of the forgetting probe; edit other records")

    def measure(self, editor: Editor) -> dict[str, float]:
        """The four forgetting measures of the editor's current state."""
        prompts = [fact.prompt for fact in self.facts]
        scores = editor.score(prompts * 2, [fact.original_answer for fact in self.facts] + [fact.target for fact in self.facts])
        return {
            "heldout_perplexity": metrics.perplexity(editor.text_scores(self.heldout_texts)),
            "unedited_true_over_false": metrics.preference_score(scores[: len(prompts)], scores[len(prompts) :]),
            **self.generation_measures(self.generations(editor)),
        }

    def generations(self, editor: Editor) -> list[str]:
        """The editor's greedy answers to the generation prompts (without the prompts)."""
        return [result.text for result in editor.query_batch(self.generation_prompts, self.settings.generation_tokens)]

    def generation_measures(self, generations: Sequence[str]) -> dict[str, float]:
        """Fluency (each generation measured with its prompt, as ROME does) and the repetitive share."""
        return {
            "generation_fluency": metrics.generation_fluency(
                [f"{prompt} {generation}" for prompt, generation in zip(self.generation_prompts, generations)]
            ),
            "repetitive_generations": metrics.repetitive_share(generations, self.settings.min_trigram_repeats),
        }


def _round_robin_replies(records: Sequence[EditRecord]) -> list[str]:
    """Every topic's replies, first replies of all topics first, then second replies, ...; no repeats."""
    by_topic = [(*record.target_replies, *record.contrast_replies) for record in records]
    ordered = [replies[rank] for rank in range(max(map(len, by_topic), default=0)) for replies in by_topic if rank < len(replies)]
    return list(dict.fromkeys(ordered))


@dataclass(frozen=True)
class CollapseThresholds:
    """When a checkpoint counts as collapsed, relative to the unedited model (T = 0).

    perplexity_ratio: held-out perplexity at least this many times the unedited one. 2 is far
        above the noise of a fixed sample (the unedited value is reproduced exactly) and far below
        the jumps of orders of magnitude that mark collapsed models (Yang et al., 2024, who propose
        perplexity as the surrogate for collapse), so collapse is caught early.
    fluency_ratio: generation fluency below this fraction of the unedited one. Relative, because
        the entropy grows with the length of the generations, so an absolute bound would fit one
        `generation_tokens` only; 0.8 means the generations lost a fifth of their distinct
        n-gram entropy, more than a healthy edited model loses (ROME and MEMIT report fluency of
        working editors within a few percent of the unedited model's).
    repetition_rise: share of repetitive generations at least this much above the unedited share.
        A rise, because small models already loop under greedy decoding; 0.25 is one generation
        in four newly stuck in a loop.
    """

    perplexity_ratio: float = 2.0
    fluency_ratio: float = 0.8
    repetition_rise: float = 0.25

    def __post_init__(self):
        check_real(self.perplexity_ratio, "perplexity_ratio", 1.0, 1e6)
        check_real(self.fluency_ratio, "fluency_ratio", 0.0, 1.0)
        check_real(self.repetition_rise, "repetition_rise", 0.0, 1.0)


def collapse_reasons(unedited: Mapping[str, float], edited: Mapping[str, float], thresholds: CollapseThresholds) -> list[str]:
    """The measures of `edited` that crossed their threshold against `unedited` (empty: no collapse).

    A measure that is no longer finite (NaN or infinite perplexity) counts as crossed.
    """
    reasons = []
    if _crossed(edited["heldout_perplexity"], lambda ppl: ppl >= thresholds.perplexity_ratio * unedited["heldout_perplexity"]):
        reasons.append("heldout_perplexity")
    if _crossed(edited["generation_fluency"], lambda fluency: fluency < thresholds.fluency_ratio * unedited["generation_fluency"]):
        reasons.append("generation_fluency")
    # Shares are fractions k/n, whose differences carry rounding (0.35 - 0.1 < 0.25 in floats).
    rise = thresholds.repetition_rise - 1e-9
    if _crossed(edited["repetitive_generations"], lambda share: share - unedited["repetitive_generations"] >= rise):
        reasons.append("repetitive_generations")
    return reasons


def _crossed(value: float, beyond) -> bool:
    return not math.isfinite(value) or beyond(value)


def collapse_point(rows: Sequence[tuple[int, Mapping[str, float]]], thresholds: CollapseThresholds | None = None) -> int | None:
    """The first number of edits T at which the model collapsed (`collapse_reasons` not empty), or
    None if it never did; `rows` are (T, `ForgettingProbe.measure` result), one of them at T = 0."""
    thresholds = thresholds or CollapseThresholds()
    counts = [check_int(count, "each row's number of edits", 0) for count, _ in rows]
    if len(set(counts)) != len(counts):
        raise ValueError(f"two rows have the same number of edits: {sorted(counts)}")
    by_count = dict(rows)
    if 0 not in by_count:
        raise ValueError("collapse is measured against the unedited model: give a row at T = 0")
    unedited = by_count[0]
    if not all(math.isfinite(value) for value in unedited.values()):
        raise ValueError(f"the unedited measures must be finite, got {dict(unedited)}")
    return next((count for count in sorted(by_count) if collapse_reasons(unedited, by_count[count], thresholds)), None)
