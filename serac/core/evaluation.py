"""The evaluation protocols every editor is run through.

- single: for each record, edit, measure, reset.
- batch: k records edited at once, measured, reset.
- sequential: edits accumulate without reset; after T = 1, 10, 100, ... edits the metrics
  are measured on every edit made so far.

Out-of-scope outputs are compared with the unedited editor's, scored once before any edit.
Edit and rephrase success are exact matches (every target token the argmax); the token-level
`*_token_accuracy` beside them are EasyEdit's reliability and generalization. Locality is
reported two ways: whether the teacher-forced argmax on the gold answer changed (`drawdown`,
any token; `locality_token`: EasyEdit's share of unchanged positions), and, from generated
answers, the model's own exact match and token F1 against the gold answers before and after
the edits, with the share of answers that changed (`locality_answer_*`), so a table shows
that the base model answers something.

Some datasets edit one fact several times with different targets (zsRE dev: 116 of its 537
edits are rewritten by a later one). No editor can give both targets for one question, so
besides the usual scores against each edit's own target, `*_latest` scores measure against
the latest target of the edit's fact among the edits made so far, and `superseded` is the
fraction of edits that a later edit rewrote.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from serac.core import metrics
from serac.core.editor import Editor
from serac.core.language_model import TargetScore
from serac.core.records import EditRecord
from serac.core.setting_checks import SettingsError, check_bool, check_choice, check_int

PROTOCOLS = ("single", "batch", "sequential")


@dataclass
class EvalConfig:
    protocol: str = "single"
    batch_size: int = 10  # edits per step in the batch protocol
    checkpoints: tuple[int, ...] = (1, 10, 100)  # sequential: measure after this many edits (and after all)
    max_records: int | None = None
    answer_locality: bool = True  # also generate answers to the locality prompts (the `locality_answer_*` metrics)

    def __post_init__(self):
        check_choice(self.protocol, "protocol", PROTOCOLS)
        check_bool(self.answer_locality, "answer_locality")
        check_int(self.batch_size, "batch_size", 1)
        if isinstance(self.checkpoints, (str, bytes)) or not hasattr(self.checkpoints, "__iter__"):
            raise SettingsError(f"checkpoints must be a list of edit counts, got {self.checkpoints!r}")
        self.checkpoints = tuple(check_int(t, "each of checkpoints", 1) for t in self.checkpoints)
        if self.max_records is not None:
            check_int(self.max_records, "max_records (None for every record)", 1)


@dataclass
class _Queries:
    """Every prompt/target pair measured for a set of records, flattened, with its kind."""

    kinds: list[str]
    prompts: list[str]
    targets: list[str]

    @classmethod
    def of(cls, records: Sequence[EditRecord]) -> "_Queries":
        queries = cls([], [], [])
        for record in records:
            queries._add("edit", [record.prompt], [record.target])
            queries._add("rephrase", record.rephrases, [record.target] * len(record.rephrases))
            queries._add("locality", record.locality_prompts, record.locality_answers)
            queries._add("portability", record.portability_prompts, record.portability_answers)
        return queries

    def _add(self, kind: str, prompts: Sequence[str], targets: Sequence[str]) -> None:
        for prompt, target in zip(prompts, targets):
            self.kinds.append(kind)
            self.prompts.append(prompt)
            self.targets.append(target)

    def select(self, scores: list[TargetScore], kind: str) -> list[TargetScore]:
        return [score for score, k in zip(scores, self.kinds) if k == kind]


@dataclass
class Unedited:
    """The unedited editor on the records' locality prompts, by record source: its teacher-forced
    scores of the gold answers and, if asked for, its generated answers."""

    scores: dict[str, list[TargetScore]]
    answers: dict[str, list[str]] | None = None

    @classmethod
    def of(cls, editor: Editor, records: Sequence[EditRecord], with_answers: bool) -> "Unedited":
        prompts, golds = _locality_pairs(records)
        scores = _by_record(records, editor.score(prompts, golds) if prompts else [])
        answers = _by_record(records, _answers(editor, prompts)) if with_answers else None
        return cls(scores, answers)

    def to_state(self) -> dict:
        """Plain tensors, strings and lists (loadable with `torch.load(weights_only=True)`)."""
        scores = {
            source: [[score.target_ids, score.logprobs, score.predicted_ids] for score in scores]
            for source, scores in self.scores.items()
        }
        return {"scores": scores, "answers": self.answers}

    @classmethod
    def from_state(cls, state: dict) -> "Unedited":
        scores = {source: [TargetScore(*fields) for fields in scores] for source, scores in state["scores"].items()}
        return cls(scores, state["answers"])


def _locality_pairs(records: Sequence[EditRecord]) -> tuple[list[str], list[str]]:
    """Every record's locality prompts and their gold answers, flattened in record order."""
    prompts = [prompt for record in records for prompt in record.locality_prompts]
    return prompts, [answer for record in records for answer in record.locality_answers]


def _by_record(records: Sequence[EditRecord], flat: list) -> dict[str, list]:
    values = iter(flat)
    return {record.source: [next(values) for _ in record.locality_prompts] for record in records}


ANSWER_CHUNK = 64  # prompts per query_batch call when answering many (a progress bar step)


def _answers(editor: Editor, prompts: list[str]) -> list[str]:
    """The editor's generated answers; hundreds of them take minutes on a CPU, hence the bar."""
    chunks = [prompts[start : start + ANSWER_CHUNK] for start in range(0, len(prompts), ANSWER_CHUNK)]
    progress = tqdm(chunks, desc="answering locality prompts", unit="chunk", disable=len(chunks) < 2, leave=False)
    return [result.text for chunk in progress for result in editor.query_batch(chunk)]


def measure(editor: Editor, records: Sequence[EditRecord], before: Unedited) -> dict[str, float]:
    """Metrics of the editor's current state on `records`, against the unedited editor's `before`."""
    queries = _Queries.of(records)
    after = editor.score(queries.prompts, queries.targets)
    locality_before = [score for record in records for score in before.scores[record.source]]
    locality_after = queries.select(after, "locality")
    row = {
        "edit_success": metrics.edit_success(queries.select(after, "edit")),
        "edit_token_accuracy": metrics.token_accuracy(queries.select(after, "edit")),
        "rephrase_success": metrics.edit_success(queries.select(after, "rephrase")),
        "rephrase_token_accuracy": metrics.token_accuracy(queries.select(after, "rephrase")),
        "drawdown": metrics.drawdown(locality_before, locality_after),
        "locality_token": metrics.token_locality(locality_before, locality_after),
        "locality_accuracy_drop": metrics.accuracy_drop(locality_before, locality_after),
    }
    if before.answers is not None and queries.select(after, "locality"):
        row.update(_answer_locality(editor, records, before.answers))
    portability = queries.select(after, "portability")
    if portability:
        row["portability"] = metrics.edit_success(portability)
    row.update(_latest_target_scores(editor, records, queries.select(after, "edit"), queries.select(after, "rephrase")))
    if all(record.original_answer for record in records):
        row.update(_preference_scores(editor, records, queries.select(after, "edit"), queries.select(after, "rephrase")))
    return row


def _answer_locality(editor: Editor, records: Sequence[EditRecord], answers_before: dict[str, list[str]]) -> dict[str, float]:
    """The model's own answers to the locality prompts against the gold answers, before and after the edits."""
    prompts, golds = _locality_pairs(records)
    before = [answer for record in records for answer in answers_before[record.source]]
    after = _answers(editor, prompts)
    return {
        "locality_answer_em_before": metrics.answer_exact_match(before, golds),
        "locality_answer_em_after": metrics.answer_exact_match(after, golds),
        "locality_answer_f1_before": metrics.answer_f1(before, golds),
        "locality_answer_f1_after": metrics.answer_f1(after, golds),
        "locality_answer_changed": sum(b != a for b, a in zip(before, after)) / len(before),
    }


def _preference_scores(
    editor: Editor, records: Sequence[EditRecord], edit_scores: list[TargetScore], rephrase_scores: list[TargetScore]
) -> dict[str, float]:
    """CounterFact's efficacy, paraphrase and neighbourhood scores (`metrics.preference_score`), from the
    records' original answers. The neighbourhood compares the true object with the new target on the
    neighbour prompts: the locality prompts whose gold answer is the edited fact's true object
    (CounterFact's, another subject with the same relation and object). Unrelated questions (zsRE's NQ
    locality prompts) are no neighbours; without any, there is no neighbourhood score."""
    neighbours = [_neighbour_prompts(record) for record in records]
    prompts, targets = [], []
    for record, record_neighbours in zip(records, neighbours):
        for prompt in (record.prompt, *record.rephrases):
            prompts.append(prompt)
            targets.append(record.original_answer)
        for prompt in record_neighbours:
            prompts.extend([prompt, prompt])
            targets.extend([record.original_answer, record.target])
    scores = iter(editor.score(prompts, targets))
    true_on_edit, true_on_rephrase, true_on_neighbour, new_on_neighbour = [], [], [], []
    for record, record_neighbours in zip(records, neighbours):
        true_on_edit.append(next(scores))
        true_on_rephrase.extend(next(scores) for _ in record.rephrases)
        for _ in record_neighbours:
            true_on_neighbour.append(next(scores))
            new_on_neighbour.append(next(scores))
    row = {
        "efficacy_score": metrics.preference_score(edit_scores, true_on_edit),
        "paraphrase_score": metrics.preference_score(rephrase_scores, true_on_rephrase),
    }
    if true_on_neighbour:
        row["neighborhood_score"] = metrics.preference_score(true_on_neighbour, new_on_neighbour)
    return row


def _neighbour_prompts(record: EditRecord) -> list[str]:
    """The locality prompts whose gold answer is the record's true object."""
    return [prompt for prompt, answer in zip(record.locality_prompts, record.locality_answers) if answer == record.original_answer]


def _latest_target_scores(
    editor: Editor, records: Sequence[EditRecord], edit_scores: list[TargetScore], rephrase_scores: list[TargetScore]
) -> dict[str, float]:
    """Edit and rephrase success against the latest target of each edit's fact (see the module doc)."""
    latest = {record.fact: record.target for record in records}  # later records overwrite earlier ones
    is_superseded = [latest[record.fact] != record.target for record in records]
    superseded = [record for record, stale in zip(records, is_superseded) if stale]
    prompts = [prompt for record in superseded for prompt in (record.prompt, *record.rephrases)]
    targets = [latest[record.fact] for record in superseded for _ in (record.prompt, *record.rephrases)]
    rescored = iter(editor.score(prompts, targets) if prompts else [])
    rephrases = iter(rephrase_scores)
    current_edits, current_rephrases = [], []
    for record, stale, edit_score in zip(records, is_superseded, edit_scores):
        own = [edit_score, *(next(rephrases) for _ in record.rephrases)]
        if stale:
            own = [next(rescored) for _ in own]
        current_edits.append(own[0])
        current_rephrases.extend(own[1:])
    return {
        "edit_success_latest": metrics.edit_success(current_edits),
        "rephrase_success_latest": metrics.edit_success(current_rephrases),
        "superseded": len(superseded) / len(records),
    }


def evaluate(editor: Editor, records: Sequence[EditRecord], config: EvalConfig) -> list[dict]:
    """Rows of metrics: one for single/batch (means over steps), one per checkpoint for sequential."""
    records = list(records[: config.max_records] if config.max_records else records)
    if not records:
        raise ValueError("no records to evaluate")
    if len({record.source for record in records}) != len(records):
        raise ValueError("records must have distinct `source` fields (they key the unedited scores)")
    editor.reset()
    before = Unedited.of(editor, records, config.answer_locality)
    if config.protocol == "sequential":
        return _sequential(editor, records, before, config)
    step = 1 if config.protocol == "single" else config.batch_size
    rows, seconds = [], 0.0
    for start in tqdm(range(0, len(records), step), desc=f"{config.protocol} edits", unit="step"):
        chunk = records[start : start + step]
        started = time.perf_counter()
        editor.add_edits(chunk)
        seconds += time.perf_counter() - started
        rows.append((len(chunk), measure(editor, chunk, before)))
        editor.reset()
    summary = _weighted_mean(rows)
    summary.update(protocol=config.protocol, edits_per_step=step, edits=len(records), seconds_per_edit=seconds / len(records))
    return [summary]


def edit_step(editor: Editor, records: Sequence[EditRecord]) -> float:
    """Make one editing step, each record's subject handed on: `add_edit` for one record,
    `add_edits` for a batch (edited together, as MEMIT edits many facts at once); its seconds."""
    started = time.perf_counter()
    if len(records) == 1:
        editor.add_edit(records[0].prompt, records[0].target, records[0].subject or None)
    else:
        editor.add_edits(records)
    return time.perf_counter() - started


def _sequential(editor, records, before, config) -> list[dict]:
    checkpoints = sorted({t for t in config.checkpoints if t < len(records)} | {len(records)})
    rows, seconds, done = [], 0.0, 0
    with tqdm(total=len(records), desc="sequential edits", unit="edit") as progress:
        for checkpoint in checkpoints:
            for record in records[done:checkpoint]:
                seconds += edit_step(editor, [record])
                progress.update(1)
            done = checkpoint
            row = measure(editor, records[:checkpoint], before)
            row.update(protocol="sequential", edits=checkpoint, seconds_per_edit=seconds / checkpoint)
            rows.append(row)
    editor.reset()
    return rows


def _weighted_mean(rows: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """Per-metric mean over steps, weighted by the edits in each step (the last batch may be smaller)."""
    keys = sorted({key for _, row in rows for key in row})
    summary = {}
    for key in keys:
        weighted = [(weight, row[key]) for weight, row in rows if key in row]
        summary[key] = sum(w * v for w, v in weighted) / sum(w for w, _ in weighted)
    return summary
