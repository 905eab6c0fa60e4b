"""The scale benchmark's data: no generated distractor is an edit of a fact a real edit rewrites
or a neighbourhood prompt asks about, and no probe is one that another real edit rightly answers."""

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "scale"))

from distractors import distractors  # noqa: E402
from scale_run import pick_probes  # noqa: E402

from serac.core.records import EditRecord  # noqa: E402


def fact(prompt, subject, original, target, neighbours=()):
    return EditRecord(prompt=prompt, target=target, subject=subject, original_answer=original,
                      rephrases=(f"{prompt}?",), locality_prompts=tuple(neighbours), source=prompt + target)


TWINNED = fact("Mexico City is a twin city of", "Mexico City", "Lyon", "Venice", ["The twin city of Prague is"])
COUNTERFACT = [
    TWINNED,
    fact("Budapest is a twin city of", "Budapest", "Vienna", "Nottingham"),
    fact("Budapest is located in", "Budapest", "Europe", "Asia"),
    fact("Prague is located in", "Prague", "Europe", "Africa"),
    fact("The mother tongue of Anna is", "Anna", "English", "French"),
]


def test_distractors_never_edit_a_fact_a_real_edit_or_a_neighbour_prompt_asks_about():
    made = {prompt for prompt, *_ in itertools.islice(distractors(COUNTERFACT, [], seed=0), 500)}
    # Budapest's twin city and location are real edits; Prague's twin city is asked by a neighbour prompt.
    assert not made & {"Budapest is a twin city of", "Budapest is located in", "Prague is a twin city of", "Prague is located in"}
    assert {"The mother tongue of Prague is", "The mother tongue of Budapest is", "Anna is a twin city of"} <= made


def test_probes_exclude_edits_that_another_real_edit_answers():
    again = fact("Mexico City is a twin city of", "Mexico City", "Madrid", "Rome")  # one question, two facts
    asked = fact("Oslo is a twin city of", "Oslo", "Vienna", "Rome", ["The twin city of Budapest is"])  # Budapest's twin city is edited
    clean = fact("The mother tongue of Lena is", "Lena", "German", "Italian", ["The mother tongue of Peter is"])
    zsre = fact("Who made Volvo B12M?", "Volvo B12M", "Volvo", "Tata", ["who wrote hamlet"])
    real = {"counterfact/train": COUNTERFACT[1:] + [again], "counterfact/val": [TWINNED, asked, clean],
            "zsre/train": [], "zsre/dev": [zsre]}
    for seed in range(5):
        assert pick_probes(real, 2, seed) == [clean, zsre]


def test_a_zsre_subject_gets_no_distractor_of_the_relation_its_question_names():
    # zsRE's targets are random, so the label template shares no answer with the question; its words do.
    counterfact = [
        fact("Abbey Road is represented by record label", "Abbey Road", "Apple", "EMI"),
        fact("The mother tongue of Anna is", "Anna", "English", "French"),
    ]
    question = EditRecord(prompt="What is the name of Refresh the Demon's record label?", target="Ultra Sonic",
                          subject="Refresh the Demon", original_answer="Century Media",
                          rephrases=("Which record label released Refresh the Demon?",), source="zsre")
    made = {prompt for prompt, *_ in itertools.islice(distractors(counterfact, [question], seed=0), 500)}
    assert "The mother tongue of Refresh the Demon is" in made
    assert not any("Refresh the Demon" in prompt and "label" in prompt for prompt in made)
