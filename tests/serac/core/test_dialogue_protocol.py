"""The dialogue protocol's bookkeeping, checked with an editor whose behaviour is known exactly."""

import json
import math

import pytest
import torch
from in_memory_editor import InMemoryEditor

from serac.core.data import CONVSENT_TEMPLATES
from serac.core.dialogue_evaluation import DialogueEvalConfig, evaluate_dialogue
from serac.core.editor import Editor, QueryResult
from serac.core.language_model import TargetScore
from serac.core.records import EditRecord
from serac.core.results import write_results

TOPICS = [f"topic{i:02d}" for i in range(12)]
VOCAB = 4
REPLY_TOKENS = 3
SHIFTED = torch.log_softmax(torch.tensor([0.0, 2.0, 0.0, 0.0]), dim=-1)  # edited: token 1 becomes the argmax
UNIFORM = torch.full((VOCAB,), -math.log(VOCAB))
EDITED_KL = (UNIFORM.exp() * (UNIFORM - SHIFTED)).sum().item()


class StanceEditor(InMemoryEditor):
    """Every reply token has log-prob -1 and a uniform next-token distribution, until an edit.

    An edit is about the topics its prompt names and the label its target starts with (the
    descriptor "Topic: t. Sentiment: positive" -> "positive", or a question -> "positive ...").
    After it, a prompt naming an edited topic (any prompt, if `leaks`) is "affected": replies
    starting with the label gain `target_gain`, the others `contrast_gain`; the distributions
    become SHIFTED; the answer is routed.
    """

    name = "stance"

    def __init__(self, target_gain=0.5, contrast_gain=0.0, leaks=False):
        super().__init__()
        self.target_gain, self.contrast_gain, self.leaks = target_gain, contrast_gain, leaks

    def _label(self, prompt: str) -> str | None:
        for edit_prompt, target in self.edits.values():
            if self.leaks or any(topic in prompt and topic in edit_prompt for topic in TOPICS):
                return target.split()[0]
        return None

    def score(self, prompts, targets):
        scores = []
        for prompt, target in zip(prompts, targets):
            label = self._label(prompt)
            gain = 0.0 if label is None else self.target_gain if target.startswith(label) else self.contrast_gain
            ids = torch.arange(REPLY_TOKENS)
            scores.append(TargetScore(ids, torch.full((REPLY_TOKENS,), -1.0 + gain), ids))
        return scores

    def target_logprobs(self, prompts, targets):
        return [(UNIFORM if self._label(prompt) is None else SHIFTED).expand(REPLY_TOKENS, VOCAB) for prompt in prompts]

    def query_batch(self, prompts, max_new_tokens=20):
        return [
            QueryResult(f"{self._label(p)} opinion" if self._label(p) else "no opinion", bool(self._label(p)))
            for p in prompts
        ]


def records(n):
    """Like the ConvSent loader's: out-of-scope questions are about the next record's topic."""
    return [
        EditRecord(
            prompt=f"Topic: {TOPICS[i]}. Sentiment:",
            target="positive",
            rephrases=tuple(template.format(TOPICS[i]) for template in CONVSENT_TEMPLATES),
            locality_prompts=tuple(template.format(TOPICS[(i + 1) % n]) for template in CONVSENT_TEMPLATES),
            target_replies=(f"positive about {TOPICS[i]}", f"positive, {TOPICS[i]} is fine"),
            contrast_replies=(f"negative about {TOPICS[i]}",),
            source=f"#{i}",
        )
        for i in range(n)
    ]


def test_single_protocol_measures_each_edit_alone():
    editor = StanceEditor()
    [row] = evaluate_dialogue(editor, records(4), DialogueEvalConfig(protocol="single")).rows
    assert row["success"] == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert row["success_before"] == pytest.approx(0.5) and row["on_topic"] == 1.0
    assert row["score"] == pytest.approx(row["success"])
    assert row["drawdown"] == 0.0 and row["out_of_scope_changed"] == 0.0
    assert row["in_scope_routed"] == 1.0 and row["out_of_scope_routed"] == 0.0
    assert row["edits"] == 4 and row["protocol"] == "single"
    assert editor.max_edits_seen == 1 and editor.resets == 1 + 4
    assert editor.edit_calls[0] == [("Topic: topic00. Sentiment:", "positive")]


def test_score_is_success_discounted_by_going_off_topic():
    # The target replies win the preference only because the contrast replies fell further.
    editor = StanceEditor(target_gain=-0.5, contrast_gain=-2.0)
    [row] = evaluate_dialogue(editor, records(2), DialogueEvalConfig()).rows
    assert row["success"] == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert row["on_topic"] == pytest.approx(math.exp(-0.5))
    assert row["score"] == pytest.approx(row["success"] * row["on_topic"])


def test_drawdown_is_the_kl_of_out_of_scope_distributions():
    [row] = evaluate_dialogue(StanceEditor(leaks=True), records(3), DialogueEvalConfig(drawdown_top_k=None)).rows
    assert row["drawdown"] == pytest.approx(EDITED_KL)
    assert row["out_of_scope_changed"] == 1.0 and row["out_of_scope_routed"] == 1.0


def test_top_k_drawdown_is_exact_with_the_whole_vocabulary_and_a_lower_bound_below():
    exact = DialogueEvalConfig(drawdown_top_k=VOCAB)
    [row] = evaluate_dialogue(StanceEditor(leaks=True), records(2), exact).rows
    assert row["drawdown"] == pytest.approx(EDITED_KL, rel=1e-5)
    [coarse] = evaluate_dialogue(StanceEditor(leaks=True), records(2), DialogueEvalConfig(drawdown_top_k=1)).rows
    assert 0.0 < coarse["drawdown"] < EDITED_KL


def test_sequential_protocol_measures_all_edits_so_far_at_each_checkpoint():
    editor = StanceEditor()
    results = evaluate_dialogue(
        editor, records(12), DialogueEvalConfig(protocol="sequential", checkpoints=(1, 10, 100))
    )
    rows = results.rows
    assert [row["edits"] for row in rows] == [1, 10, 12]
    # After T edits the out-of-scope topics of the first T - 1 records are edited too (the last wraps
    # round): questions about them are in scope now, and are not counted as drawdown.
    assert [row["out_of_scope_edits"] for row in rows] == pytest.approx([1.0, 1 / 10, 0.0])
    assert rows[1]["out_of_scope_routed"] == 0.0 and rows[1]["drawdown"] == 0.0
    assert math.isnan(rows[2]["drawdown"]) and math.isnan(rows[2]["out_of_scope_routed"])
    assert all(row["in_scope_routed"] == 1.0 for row in rows)
    assert editor.max_edits_seen == 12 and editor.edit_ids() == []  # the harness leaves the editor reset


class LoggingStanceEditor(StanceEditor):
    """Remembers the prompts whose distributions were asked for: the out-of-scope questions."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.distribution_prompts = set()

    def target_logprobs(self, prompts, targets):
        self.distribution_prompts.update(prompts)
        return super().target_logprobs(prompts, targets)


def test_sequential_protocol_asks_out_of_scope_questions_about_topics_beyond_max_records():
    """With records to spare, every edit's drawdown is measured, on a topic no edit of the run is about."""
    config = DialogueEvalConfig(protocol="sequential", checkpoints=(1, 10), max_records=10)
    editor = LoggingStanceEditor()
    rows = evaluate_dialogue(editor, records(12), config).rows
    assert [row["out_of_scope_edits"] for row in rows] == [1.0, 1.0]
    assert [row["drawdown"] for row in rows] == [0.0, 0.0]
    asked_about = {topic for topic in TOPICS for prompt in editor.distribution_prompts if topic in prompt}
    assert asked_about == {TOPICS[10], TOPICS[11]}
    leaking = evaluate_dialogue(LoggingStanceEditor(leaks=True), records(12), config).rows
    assert all(row["drawdown"] == pytest.approx(EDITED_KL, rel=0.05) for row in leaking)


def test_replies_edits_use_the_questions_that_are_not_measured():
    editor = StanceEditor()
    [record] = records(1)
    evaluate_dialogue(editor, [record], DialogueEvalConfig(edit_with="replies", questions_per_edit=3))
    [edits] = editor.edit_calls
    assert len(edits) == 13 - 3 and len({question for question, _ in edits}) == 10
    assert {question for question, _ in edits} < set(record.rephrases)
    assert {reply for _, reply in edits} == set(record.target_replies)
    with pytest.raises(ValueError, match="lower questions_per_edit"):
        evaluate_dialogue(editor, [record], DialogueEvalConfig(edit_with="replies", questions_per_edit=13))


def test_sample_generations_before_and_after_the_first_edits_go_into_the_report(tmp_path):
    results = evaluate_dialogue(StanceEditor(), records(4), DialogueEvalConfig(sample_generations=2))
    assert len(results.generations) == 2 * 2
    in_scope, out_of_scope = results.generations[:2]
    assert in_scope["edit"] == out_of_scope["edit"] == "Topic: topic00. Sentiment: positive"
    assert (in_scope["scope"], in_scope["before"], in_scope["after"], in_scope["routed"]) == (
        "in scope",
        "no opinion",
        "positive opinion",
        True,
    )
    assert (out_of_scope["scope"], out_of_scope["after"], out_of_scope["routed"]) == (
        "out of scope",
        "no opinion",
        False,
    )
    assert "topic01" in out_of_scope["question"]
    generations = [{**results.generations[0], "after": "a | b\nc"}]  # free text must not break the table
    markdown = write_results(results.rows, tmp_path, "toy", {"editor": "stance"}, {"Sample generations": generations})
    text = markdown.read_text()
    assert "## Sample generations" in text and "a \\| b<br>c" in text
    assert (
        json.loads((tmp_path / "results.json").read_text())["sections"]["Sample generations"][0]["scope"] == "in scope"
    )


def test_editors_without_distributions_and_records_without_replies_are_refused():
    class NoDistributions(StanceEditor):
        target_logprobs = Editor.target_logprobs

    with pytest.raises(NotImplementedError, match="'stance' editor cannot give next-token distributions"):
        evaluate_dialogue(NoDistributions(), records(1), DialogueEvalConfig())
    fact = EditRecord(
        prompt="Who wrote Hamlet?", target="Marlowe", rephrases=("Hamlet's author?",), locality_prompts=("?",)
    )
    with pytest.raises(ValueError, match="needs dialogue records"):
        evaluate_dialogue(StanceEditor(), [fact], DialogueEvalConfig())
    with pytest.raises(ValueError, match="no records"):
        evaluate_dialogue(StanceEditor(), [], DialogueEvalConfig())


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="protocol must be one of"):
        DialogueEvalConfig(protocol="batch")
    with pytest.raises(ValueError, match="edit_with must be one of"):
        DialogueEvalConfig(edit_with="weights")
    with pytest.raises(ValueError, match="drawdown_top_k"):
        DialogueEvalConfig(drawdown_top_k=0)
