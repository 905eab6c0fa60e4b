"""The dialogue editing protocol (ConvSent, PersonalityEdit): opinion edits measured on replies.

A dialogue edit asks the model to talk about a topic with a sentiment or a personality. It
is measured on questions about the topic (in scope, a sample of the 13 ConvSent questions)
and on the same questions about another topic (out of scope), each paired with replies:

- success: `metrics.preference_success` of the edit's target replies over its contrast
  replies (the other sentiment or traits), every reply scored after every sampled question;
- on_topic: `metrics.on_topic` of the target replies, unedited vs edited model;
- score = success × on_topic, per edit: winning the preference by making every reply less
  likely (pushing the model off the topic) is not a success (SERAC's ConvSent metric);
- drawdown: mean KL(unedited ‖ edited) of the next-token distributions over the out-of-scope
  questions paired with the edit's target replies (`metrics.kl_divergence`);
- out_of_scope_changed: fraction of out-of-scope questions where the argmax of any reply
  token changed; out_of_scope_edits: fraction of edits whose out-of-scope questions were
  measured (sequential: not those about a topic that was edited too; with `max_records`
  below the number of records, sequential runs ask about the unedited records' topics
  instead, so every edit is measured); in_scope_routed /
  out_of_scope_routed: fractions answered from an edit (editors that do not route, like
  MEND and FT, report 0).

Protocols: single (edit, measure, reset) and sequential (edits accumulate; after T edits
every edit so far is measured). The unedited model is measured once, before any edit.
"""

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from serac.core import metrics
from serac.core.editor import Editor
from serac.core.language_model import TargetScore
from serac.core.records import EditRecord
from serac.core.setting_checks import SettingsError

PROTOCOLS = ("single", "sequential")
# "descriptor": the record's own edit (e.g. "Topic: jazz. Sentiment: positive" -> "positive"),
# which SERAC stores and its counterfactual model reads. "replies": (question, target reply)
# pairs on the in-scope questions that are not measured, as parametric editors (MEND, FT)
# are edited in PersonalityEdit: they learn only what they are trained on.
EDIT_KINDS = ("descriptor", "replies")
# A floor for the log-probability of the "rest" bucket, which is -inf when the top k tokens
# hold all the mass: keeps 0 · log 0 in the KL from becoming NaN.
_LOG_FLOOR = -1e4


@dataclass
class DialogueEvalConfig:
    protocol: str = "single"
    checkpoints: tuple[int, ...] = (1, 10, 100)  # sequential: measure after this many edits (and after all)
    max_records: int | None = None
    questions_per_edit: int = 3  # in-scope questions measured per edit, each with every reply
    drawdown_questions: int = 3  # out-of-scope questions per edit, each with the edit's target replies
    # The unedited distributions are kept as their top k tokens plus one bucket for the rest
    # (a full SmolLM2 distribution over a reply is ~7 MB, and sequential runs keep them for
    # every edit). The KL of these coarsened distributions is a lower bound of the full KL,
    # equal to it up to the tail mass. None: keep the full vocabulary.
    drawdown_top_k: int | None = 256
    edit_with: str = "descriptor"
    sample_generations: int = 3  # edits whose answers before/after the edit go into the report
    generation_tokens: int = 40
    seed: int = 0  # which questions are sampled

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise SettingsError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.edit_with not in EDIT_KINDS:
            raise SettingsError(f"edit_with must be one of {EDIT_KINDS}, got {self.edit_with!r}")
        if self.questions_per_edit < 1 or self.drawdown_questions < 1:
            raise SettingsError("questions_per_edit and drawdown_questions must be at least 1")
        if self.drawdown_top_k is not None and self.drawdown_top_k < 1:
            raise SettingsError(f"drawdown_top_k must be at least 1 or None, got {self.drawdown_top_k}")
        self.checkpoints = tuple(self.checkpoints)


@dataclass(frozen=True)
class DialogueResults:
    rows: list[dict]  # one for single, one per checkpoint for sequential
    generations: list[dict]  # sample answers before and after an edit


@dataclass(frozen=True)
class _Plan:
    """What is edited and measured for one record: sampled questions, each paired with replies."""

    record: EditRecord
    edits: list[tuple[str, str]]
    questions: list[str]  # in scope, measured
    outside: list[str]  # out of scope, measured

    @classmethod
    def of(cls, record: EditRecord, config: DialogueEvalConfig, rng: random.Random, outside_pool: Sequence[str]) -> "_Plan":
        """`outside_pool`: the out-of-scope questions to sample from (see `_outside_pools`)."""
        if not record.target_replies or not record.contrast_replies:
            raise SettingsError(
                f"record {record.source or record.prompt!r} has no target or contrast replies: "
                "the dialogue protocol needs dialogue records (personality, convsent)"
            )
        if not record.rephrases or not record.locality_prompts:
            raise SettingsError(f"record {record.source or record.prompt!r} has no in-scope or out-of-scope questions")
        shuffled = rng.sample(record.rephrases, len(record.rephrases))
        questions, unmeasured = shuffled[: config.questions_per_edit], shuffled[config.questions_per_edit :]
        outside = rng.sample(outside_pool, min(config.drawdown_questions, len(outside_pool)))
        if config.edit_with == "descriptor":
            edits = [(record.prompt, record.target)]
        elif unmeasured:
            replies = record.target_replies
            edits = [(question, replies[i % len(replies)]) for i, question in enumerate(unmeasured)]
        else:
            raise SettingsError(
                f"edit_with='replies' edits on the questions that are not measured, but all "
                f"{len(record.rephrases)} of {record.source or record.prompt!r} are: lower questions_per_edit"
            )
        return cls(record, edits, questions, outside)

    def in_scope_pairs(self) -> tuple[list[str], list[str]]:
        """In-scope questions × target replies, then × contrast replies (scored in one call)."""
        return _unzip(
            _pairs(self.questions, self.record.target_replies) + _pairs(self.questions, self.record.contrast_replies)
        )

    def split(self, scores: list[TargetScore]) -> tuple[list[TargetScore], list[TargetScore]]:
        """The scores of `in_scope_pairs` as (target, contrast)."""
        targets = len(self.questions) * len(self.record.target_replies)
        return scores[:targets], scores[targets:]

    def outside_pairs(self) -> tuple[list[str], list[str]]:
        return _unzip(_pairs(self.outside, self.record.target_replies))


@dataclass(frozen=True)
class _Unedited:
    """The unedited model's scores and out-of-scope distributions for one plan."""

    scores: list[TargetScore]  # of `in_scope_pairs`
    # Per out-of-scope pair: the most likely token at each position, the distributions
    # (coarsened, see `_coarsen`, or full log-probs) and the token ids the coarsening kept.
    argmax: list[torch.Tensor]
    distributions: list[torch.Tensor]
    top_tokens: list[torch.Tensor | None]


def evaluate_dialogue(editor: Editor, records: Sequence[EditRecord], config: DialogueEvalConfig) -> DialogueResults:
    """Run the protocol; the editor is left reset."""
    spare = list(records[config.max_records :]) if config.max_records else []
    records = list(records[: config.max_records] if config.max_records else records)
    if not records:
        raise ValueError("no records to evaluate")
    rng = random.Random(config.seed)
    plans = [_Plan.of(record, config, rng, pool) for record, pool in zip(records, _outside_pools(records, spare, config))]
    editor.reset()
    unedited = [_measure_unedited(editor, plan, config) for plan in tqdm(plans, desc="unedited model", unit="edit")]
    sampled = plans[: config.sample_generations]
    answers_before = [_sample_answers(editor, plan, config) for plan in sampled]
    generations = []

    def edit(index: int) -> float:
        """Apply plan `index`'s edit; returns the seconds it took, and records sample answers after it."""
        started = time.perf_counter()
        editor.add_edits(plans[index].edits)
        seconds = time.perf_counter() - started
        if index < len(sampled):
            after = _sample_answers(editor, plans[index], config)
            generations.extend(_generation_rows(plans[index], answers_before[index], after))
        return seconds

    if config.protocol == "single":
        rows, seconds = [], 0.0
        for index in tqdm(range(len(plans)), desc="single edits", unit="edit"):
            seconds += edit(index)
            rows.append(_measure(editor, plans[index], unedited[index]))
            editor.reset()
        summary = _mean_rows(rows)
        summary.update(protocol="single", edits=len(plans), seconds_per_edit=seconds / len(plans))
        return DialogueResults([summary], generations)

    checkpoints = sorted({t for t in config.checkpoints if t < len(plans)} | {len(plans)})
    rows, seconds, done = [], 0.0, 0
    covered: set[str] = set()  # questions in scope of the edits made so far
    for checkpoint in tqdm(checkpoints, desc="sequential checkpoints", unit="checkpoint"):
        seconds += sum(edit(index) for index in range(done, checkpoint))
        covered.update(question for plan in plans[done:checkpoint] for question in plan.record.rephrases)
        done = checkpoint
        # An edit's out-of-scope questions are about another topic; once that topic is edited
        # too they are in scope, and a changed answer there is no drawdown: they are skipped.
        row = _mean_rows(
            [_measure(editor, plans[i], unedited[i], covered.isdisjoint(plans[i].outside)) for i in range(checkpoint)]
        )
        row.update(protocol="sequential", edits=checkpoint, seconds_per_edit=seconds / checkpoint)
        rows.append(row)
    editor.reset()
    return DialogueResults(rows, generations)


def _outside_pools(records: list[EditRecord], spare: list[EditRecord], config: DialogueEvalConfig) -> list[tuple[str, ...]]:
    """Out-of-scope questions per record: its own locality prompts (questions about the next topic).

    Sequential runs edit the next topic too, which would leave almost no edit's out-of-scope
    questions unedited (1 in 100 at T = 100); the records after `max_records` are not edited,
    so their topics' questions serve instead, when there are any.
    """
    if config.protocol != "sequential" or not spare:
        return [record.locality_prompts for record in records]
    return [spare[index % len(spare)].rephrases for index in range(len(records))]


def _measure_unedited(editor: Editor, plan: _Plan, config: DialogueEvalConfig) -> _Unedited:
    unedited = _Unedited(editor.score(*plan.in_scope_pairs()), [], [], [])
    for logprobs in editor.target_logprobs(*plan.outside_pairs()):
        unedited.argmax.append(logprobs.argmax(dim=-1))
        if config.drawdown_top_k is None:
            unedited.distributions.append(logprobs)
            unedited.top_tokens.append(None)
        else:
            kept = logprobs.topk(min(config.drawdown_top_k, logprobs.shape[-1]), dim=-1).indices
            unedited.distributions.append(_coarsen(logprobs, kept))
            unedited.top_tokens.append(kept.int())
    return unedited


def _measure(editor: Editor, plan: _Plan, unedited: _Unedited, measure_outside: bool = True) -> dict[str, float]:
    """Metrics of one edit in the editor's current state (the out-of-scope ones if `measure_outside`)."""
    target_before, contrast_before = plan.split(unedited.scores)
    target, contrast = plan.split(editor.score(*plan.in_scope_pairs()))
    success = metrics.preference_success(target, contrast)
    on_topic = metrics.on_topic(target_before, target)
    in_scope = {
        "score": success * on_topic,
        "success": success,
        "on_topic": on_topic,
        "success_before": metrics.preference_success(target_before, contrast_before),
        # One new token is enough: the route is chosen before anything is generated.
        "in_scope_routed": _fraction_routed(editor.query_batch(plan.questions, max_new_tokens=1)),
    }
    if not measure_outside:
        return in_scope
    outside = editor.target_logprobs(*plan.outside_pairs())
    divergences = [
        metrics.kl_divergence(before, after if kept is None else _coarsen(after, kept.long()))
        for before, after, kept in zip(unedited.distributions, outside, unedited.top_tokens)
    ]
    # A question changed when the most likely token changed at any position of any of its replies.
    pair_changed = [not torch.equal(before, after.argmax(dim=-1)) for before, after in zip(unedited.argmax, outside)]
    per_question = len(plan.record.target_replies)
    changed = [any(pair_changed[i : i + per_question]) for i in range(0, len(pair_changed), per_question)]
    return {
        **in_scope,
        "drawdown": sum(divergences) / len(divergences),
        "out_of_scope_changed": sum(changed) / len(changed),
        "out_of_scope_routed": _fraction_routed(editor.query_batch(plan.outside, max_new_tokens=1)),
    }


def _coarsen(logprobs: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """[positions, k + 1] log-probs: the `kept` tokens of each position, then all other tokens as one."""
    top = logprobs.gather(-1, kept)
    rest = torch.log(-torch.expm1(torch.logsumexp(top, dim=-1).clamp(max=0.0))).clamp(min=_LOG_FLOOR)
    return torch.cat([top, rest.unsqueeze(-1)], dim=-1)


def _sample_answers(editor: Editor, plan: _Plan, config: DialogueEvalConfig) -> list:
    return editor.query_batch([plan.questions[0], plan.outside[0]], max_new_tokens=config.generation_tokens)


def _generation_rows(plan: _Plan, before: list, after: list) -> list[dict]:
    return [
        {
            "edit": f"{plan.record.prompt} {plan.record.target}",  # "Topic: X. Personality: neuroticism"
            "scope": scope,
            "question": question,
            "before": answer_before.text,
            "after": answer_after.text,
            "routed": answer_after.routed,
        }
        for scope, question, answer_before, answer_after in zip(
            ("in scope", "out of scope"), (plan.questions[0], plan.outside[0]), before, after
        )
    ]


def _pairs(questions: Sequence[str], replies: Sequence[str]) -> list[tuple[str, str]]:
    return [(question, reply) for question in questions for reply in replies]


def _unzip(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [prompt for prompt, _ in pairs], [reply for _, reply in pairs]


def _fraction_routed(results: list) -> float:
    return sum(result.routed for result in results) / len(results)


def _mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric means over the rows that have the metric (NaN if none); `out_of_scope_edits` becomes
    the fraction of edits whose out-of-scope questions were measured."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    means = {}
    for key in keys:
        values = [row[key] for row in rows if key in row]
        means[key] = sum(values) / len(values)
    for key in ("drawdown", "out_of_scope_changed", "out_of_scope_routed"):
        means.setdefault(key, float("nan"))
    means["out_of_scope_edits"] = sum(1 for row in rows if "drawdown" in row) / len(rows)
    return means
