"""The protocols' bookkeeping, checked with an editor whose behaviour is known exactly."""

import dataclasses
import json

import pytest
import torch
from in_memory_editor import InMemoryEditor

from serac.core.editor import QueryResult
from serac.core.evaluation import EvalConfig, evaluate
from serac.core.language_model import TargetScore
from serac.core.records import EditRecord
from serac.core.results import write_results


class ExactPromptEditor(InMemoryEditor):
    """Produces an edit's target exactly for the edit's own prompt and nothing else; counts resets."""

    name = "exact-prompt"

    def score(self, prompts, targets):
        edited = {prompt: target for prompt, target in self.edits.values()}
        scores = []
        for prompt, target in zip(prompts, targets):
            ids = torch.tensor([ord(c) for c in target])
            predicted = ids if edited.get(prompt) == target else torch.zeros_like(ids)
            scores.append(TargetScore(ids, torch.zeros(len(ids)), predicted))
        return scores

    def query_batch(self, prompts, max_new_tokens=20):
        return [QueryResult(text="") for _ in prompts]


def records(n):
    return [
        EditRecord(
            prompt=f"question {i}?", target=f"answer {i}", rephrases=(f"rephrased {i}?",),
            locality_prompts=(f"question {(i + 1) % n}?",), locality_answers=(f"answer {(i + 1) % n}",),
            portability_prompts=(f"question {i}?",), portability_answers=(f"answer {i}",), source=f"#{i}",
        )
        for i in range(n)
    ]


def test_single_protocol_edits_one_at_a_time_and_resets():
    editor = ExactPromptEditor()
    [row] = evaluate(editor, records(5), EvalConfig(protocol="single"))
    assert row["edit_success"] == 1.0 and row["rephrase_success"] == 0.0 and row["portability"] == 1.0
    assert row["drawdown"] == 0.0 and row["edits"] == 5
    assert editor.max_edits_seen == 1 and editor.resets == 1 + 5


@pytest.mark.parametrize("protocol", ["single", "batch", "sequential"])
def test_every_protocol_hands_each_edit_its_records_subject(protocol):
    editor = ExactPromptEditor()
    subjects = [f"entity {i}" if i % 2 else "" for i in range(4)]
    with_subjects = [dataclasses.replace(record, subject=subject) for record, subject in zip(records(4), subjects)]
    evaluate(editor, with_subjects, EvalConfig(protocol=protocol, batch_size=2, checkpoints=(2,)))
    assert editor.subjects == [subject or None for subject in subjects]


def test_batch_protocol_sees_locality_neighbours_that_are_edited_together():
    editor = ExactPromptEditor()
    [row] = evaluate(editor, records(6), EvalConfig(protocol="batch", batch_size=3))
    assert editor.max_edits_seen == 3
    # in each batch of 3, the first two records' locality prompts are edited neighbours
    assert row["drawdown"] == pytest.approx(4 / 6)
    assert row["locality_accuracy_drop"] == pytest.approx(-4 / 6)  # they now produce their gold answers


class AnsweringEditor(ExactPromptEditor):
    """Answers an edited prompt with its target; unedited, knows the gold answer of even questions only."""

    def query_batch(self, prompts, max_new_tokens=20):
        edited = {prompt: target for prompt, target in self.edits.values()}
        numbers = [int(prompt.split()[1].rstrip("?")) for prompt in prompts]
        return [
            QueryResult(edited.get(prompt) or (f"The answer {n}." if n % 2 == 0 else "no idea"))
            for prompt, n in zip(prompts, numbers)
        ]


def test_locality_is_also_scored_from_generated_answers_before_and_after_the_edits():
    [single] = evaluate(AnsweringEditor(), records(4), EvalConfig(protocol="single"))
    # one edit at a time never touches another record's locality prompt: answers unchanged
    assert single["locality_answer_em_before"] == single["locality_answer_em_after"] == 0.5
    assert single["locality_answer_f1_before"] == single["locality_answer_f1_after"] == 0.5
    assert single["locality_answer_changed"] == 0.0
    [*_, last] = evaluate(AnsweringEditor(), records(4), EvalConfig(protocol="sequential", checkpoints=(4,)))
    # all four edited: every locality prompt is now an edited question, answered with its edit's target
    assert (last["locality_answer_em_after"], last["locality_answer_changed"]) == (1.0, 1.0)
    [quiet] = evaluate(AnsweringEditor(), records(4), EvalConfig(protocol="single", answer_locality=False))
    assert not any(key.startswith("locality_answer") for key in quiet)
    with pytest.raises(ValueError, match="answer_locality"):
        EvalConfig(answer_locality="yes")


def test_sequential_protocol_measures_all_edits_so_far_at_each_checkpoint():
    editor = ExactPromptEditor()
    rows = evaluate(editor, records(12), EvalConfig(protocol="sequential", checkpoints=(1, 10, 100)))
    assert [row["edits"] for row in rows] == [1, 10, 12]
    assert rows[0]["drawdown"] == 0.0
    assert rows[1]["drawdown"] == pytest.approx(9 / 10)  # every neighbour but the 10th's is edited by then
    assert editor.edit_ids() == []  # the harness leaves the editor reset


def test_results_are_written_as_json_and_markdown(tmp_path):
    rows = evaluate(ExactPromptEditor(), records(3), EvalConfig(protocol="single"))
    markdown = write_results(rows, tmp_path, "toy", {"editor": "exact-prompt"})
    assert "| edit_success" in markdown.read_text() and "1.000" in markdown.read_text()
    assert json.loads((tmp_path / "results.json").read_text())["rows"][0]["edits"] == 3


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="protocol must be one of"):
        EvalConfig(protocol="random")
    with pytest.raises(ValueError, match="no records"):
        evaluate(ExactPromptEditor(), [], EvalConfig())


class NewestFactEditor(ExactPromptEditor):
    """Answers every phrasing of a fact with the target of the fact's newest edit."""

    def __init__(self, fact_of_prompt: dict[str, str]):
        super().__init__()
        self.fact_of_prompt = fact_of_prompt

    def score(self, prompts, targets):
        newest = {self.fact_of_prompt[prompt]: target for prompt, target in self.edits.values()}
        scores = []
        for prompt, target in zip(prompts, targets):
            ids = torch.tensor([ord(c) for c in target])
            answer = newest.get(self.fact_of_prompt.get(prompt))
            scores.append(TargetScore(ids, torch.zeros(len(ids)), ids if answer == target else torch.zeros_like(ids)))
        return scores


def test_an_edit_rewritten_by_a_later_edit_of_its_fact_is_also_scored_against_the_latest_target():
    founded = dict(subject="Acme", original_answer="1990")
    rewritten = [
        EditRecord(prompt="When was Acme founded?", target="2000", rephrases=("Acme's founding year?",), source="#0", **founded),
        EditRecord(prompt="What year was Acme founded?", target="2010", rephrases=("Founded when, Acme?",), source="#1", **founded),
        EditRecord(prompt="Who runs Acme?", target="Ada", rephrases=("Acme's boss?",), subject="Acme", original_answer="Bob", source="#2"),
    ]
    fact_of_prompt = {p: record.source if record.source != "#1" else "#0" for record in rewritten for p in (record.prompt, *record.rephrases)}
    [row] = evaluate(NewestFactEditor(fact_of_prompt), rewritten, EvalConfig(protocol="sequential", checkpoints=()))
    assert row["edit_success"] == pytest.approx(2 / 3) and row["rephrase_success"] == pytest.approx(2 / 3)
    assert row["edit_success_latest"] == 1.0 and row["rephrase_success_latest"] == 1.0
    assert row["superseded"] == pytest.approx(1 / 3)


class LogprobEditor(ExactPromptEditor):
    """The edit's target gets log-prob 0 on its own prompt and on neighbour prompts; everything else -1."""

    def score(self, prompts, targets):
        edited = {target for _, target in self.edits.values()}
        return [
            TargetScore(torch.tensor([1]), torch.tensor([0.0 if target in edited else -1.0]), torch.tensor([1]))
            for target in targets
        ]


def test_counterfact_scores_are_computed_only_when_records_carry_the_true_object():
    with_truth = [
        EditRecord(prompt="p?", target="new", rephrases=("r?",), locality_prompts=("n?",), locality_answers=("old",),
                   original_answer="old", source="#0")
    ]
    row = evaluate(LogprobEditor(), with_truth, EvalConfig(protocol="single"))[0]
    assert row["efficacy_score"] == 1.0 and row["paraphrase_score"] == 1.0
    assert row["neighborhood_score"] == 0.0  # the new object now wins on the neighbour prompt too
    row = evaluate(LogprobEditor(), records(2), EvalConfig(protocol="single"))[0]
    assert "efficacy_score" not in row


class UnreachedQuestionsEditor(LogprobEditor):
    """As LogprobEditor, but the edits never reach "who ..." questions: the true object "old" wins there."""

    def score(self, prompts, targets):
        return [
            TargetScore(torch.tensor([1]), torch.tensor([0.0 if target == "old" else -1.0]), torch.tensor([1]))
            if prompt.startswith("who") else score
            for prompt, target, score in zip(prompts, targets, super().score(prompts, targets))
        ]


def test_the_neighbourhood_score_counts_only_neighbours_of_the_fact_not_unrelated_questions():
    # zsRE: the true object is known, but the locality prompt is an unrelated NQ question with its own answer
    unrelated = [
        EditRecord(prompt="p?", target="new", rephrases=("r?",), locality_prompts=("who wrote x?",),
                   locality_answers=("someone",), original_answer="old", source="#0")
    ]
    row = evaluate(UnreachedQuestionsEditor(), unrelated, EvalConfig(protocol="single"))[0]
    assert row["efficacy_score"] == 1.0 and "neighborhood_score" not in row
    mixed = [*unrelated, EditRecord(prompt="q?", target="new", rephrases=("s?",), locality_prompts=("n?",),
                                    locality_answers=("old",), original_answer="old", source="#1")]
    row = evaluate(UnreachedQuestionsEditor(), mixed, EvalConfig(protocol="single"))[0]
    assert row["neighborhood_score"] == 0.0  # the one neighbour prompt; counting the NQ question would give 0.5
