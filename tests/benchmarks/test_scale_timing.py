"""The scale benchmark times the base model and the routed query taking turns on each prompt, so
a load change on a shared machine reaches both sides of the ratio."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "scale"))

from scale_run import paired_medians  # noqa: E402


def test_paired_medians_alternate_the_functions_on_each_call():
    calls = []
    functions = {"base": lambda prompt: calls.append(("base", prompt)), "query": lambda prompt: calls.append(("query", prompt))}
    medians = paired_medians(functions, ["a", "b"], repeats=2)
    assert set(medians) == {"base", "query"} and all(seconds >= 0 for seconds in medians.values())
    warm_up, timed = calls[:2], calls[2:]
    assert warm_up == [("base", "a"), ("query", "a")]
    assert timed == [("base", "a"), ("query", "a"), ("base", "b"), ("query", "b")] * 2
