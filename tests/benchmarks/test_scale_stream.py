"""The scale benchmark's memory at N edits is the same whatever the largest size a run goes on to:
a run to 10^4 and a run to 10^6 measure 10^4 on the same edits."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "scale"))

from scale_run import edit_stream  # noqa: E402

from serac.core.records import EditRecord  # noqa: E402


def fact(prompt, subject, original, target):
    return EditRecord(prompt=prompt, target=target, subject=subject, original_answer=original, source=prompt + target)


REAL = {
    "counterfact/train": [
        fact("Budapest is a twin city of", "Budapest", "Vienna", "Nottingham"),
        fact("Budapest is located in", "Budapest", "Europe", "Asia"),
        fact("Prague is located in", "Prague", "Europe", "Africa"),
        fact("The mother tongue of Anna is", "Anna", "English", "French"),
    ],
    "counterfact/val": [fact("Oslo is located in", "Oslo", "Europe", "Asia"), fact("The mother tongue of Ivo is", "Ivo", "Czech", "Dutch")],
    "zsre/train": [],
    "zsre/dev": [],
}


def test_the_first_edits_do_not_depend_on_the_largest_size():
    probes = REAL["counterfact/val"][:1]
    short = edit_stream(probes, REAL, largest=20, seed=0, stream_length=60)
    long = edit_stream(probes, REAL, largest=100, seed=0, stream_length=60)  # past the shuffled stretch
    assert len(short) == 20 and len(long) == 100
    assert long[:20] == short  # failed before: the shuffle ran over as many distractors as the largest size asked
    assert long[0] == (probes[0].prompt, probes[0].target, probes[0].subject)
    real_edits = {(r.prompt, r.target, r.subject) for records in REAL.values() for r in records} - {long[0]}
    assert real_edits <= set(long[:60])  # every real edit within the shuffled stretch, with its subject
    assert all(subject and subject in prompt for prompt, _, subject in long)  # the distractors' too
