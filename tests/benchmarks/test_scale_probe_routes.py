"""probe_routes explains the scale run's quality columns probe by probe: a locality prompt the edits
leave alone counts as kept (as drawdown counts it), and two runs' outcome files are compared
query by query."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "scale"))
sys.path.insert(0, str(ROOT / "tests" / "serac" / "serac"))

from probe_routes import compare, probe_outcomes  # noqa: E402
from tiny_serac import sharp_tiny_editor  # noqa: E402

from serac.core.records import EditRecord  # noqa: E402


@pytest.fixture
def editor(tmp_path):
    with sharp_tiny_editor(tmp_path / "memory") as editor:
        yield editor


def test_every_rephrase_and_locality_prompt_gets_a_row_with_its_route(editor):
    probe = EditRecord(
        prompt="The capital of Freedonia is", target=" Paris", source="cf:1", subject="Freedonia",
        rephrases=("The capital of Freedonia is", "Freedonia's capital city:", "Freedonia is governed from"),
        locality_prompts=("Who wrote Hamlet?",), locality_answers=(" Shakespeare",),
    )
    # the second rephrase is, word for word, another stored edit of the probe's subject
    editor.add_edits([(probe.prompt, probe.target), ("Freedonia's capital city:", " Rome")])
    rows = probe_outcomes(editor, [probe])
    assert [row["kind"] for row in rows] == ["edit prompt"] + ["paraphrase"] * 3 + ["locality prompt"]
    by_query = {(row["kind"], row["query"]): row for row in rows}
    assert by_query["edit prompt", probe.prompt]["outcome"] == "own edit"
    assert by_query["paraphrase", "Freedonia's capital city:"]["outcome"] == "another edit of its subject"
    assert by_query["paraphrase", "Freedonia is governed from"]["outcome"] == "base model (missed)"
    locality = by_query["locality prompt", "Who wrote Hamlet?"]
    assert locality["outcome"] == "base model" and locality["right"] is True


def test_compare_lists_only_the_queries_whose_route_or_answer_differ(tmp_path, capsys):
    def row(query, routed, right):
        return {"kind": "paraphrase", "probe": "cf:1", "query": query, "should_route": True, "outcome": "own edit",
                "routed_prompt": routed, "routed_target": " x", "probability": 0.9, "right": right,
                "probe_prompt": "p", "probe_target": " x"}

    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in [row("q1", "p", True), row("q2", "p", True), row("q3", "p", True)]))
    compare([row("q1", "p", True), row("q2", "p", False), row("q3", "elsewhere", True)], other)
    printed = capsys.readouterr().out
    assert "2 probe queries differ" in printed and "'q2'" in printed and "'q3'" in printed and "'q1'" not in printed
