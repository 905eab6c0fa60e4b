"""The edits that fill the scale benchmark's memory: the real CounterFact and zsRE edits, and
generated hard distractors that look like them.

A distractor is a subject of a real edit (CounterFact's or zsRE's) put into the template of
another relation, with an object that relation was answered with elsewhere ("Danielle
Darrieux is located in" -> "Japan"), so the memory fills with edits that share subjects and
relations with the probed ones without covering them. "Another relation" is judged as in
`serac.core.relation_templates`: a template that never shares an answer with the subject's
own. zsRE subjects (question prompts, no CounterFact template) take templates that were never
answered with their edit's answers and whose relation shares no content word with the question
or its rephrase: zsRE's targets are random, so answers alone let "{} is represented by record
label" through as another relation of "What is the name of Refresh the Demon's record label?",
and such a distractor is an edit of the probe's own fact (superseding it is right).

A distractor is never an edit of a fact that a real edit rewrites or a CounterFact neighbourhood
prompt asks about (`subject_facts.py`): such an edit would rightly answer the probe or its
locality prompt.
"""

import random
import re
from collections.abc import Iterator

from serac.core.data import load_records
from serac.core.records import EditRecord
from serac.core.relation_templates import RelationTemplates, fill
from subject_facts import SubjectFacts


def real_edits() -> dict[str, list[EditRecord]]:
    """The records of CounterFact's and zsRE's train and evaluation splits (~13.5k edits), by "dataset/split"."""
    splits = (("counterfact", "train"), ("counterfact", "val"), ("zsre", "train"), ("zsre", "dev"))
    return {f"{dataset}/{split}": load_records(dataset, split) for dataset, split in splits}


def distractors(counterfact: list[EditRecord], zsre: list[EditRecord], seed: int) -> Iterator[tuple[str, str, str]]:
    """An endless, seeded stream of (prompt, target, subject) distractors."""
    rng = random.Random(seed)
    templates = RelationTemplates(counterfact)
    answers = {  # in their own spelling (`templates.answers` is lower-cased for comparisons)
        template: sorted({answer for i in indices for answer in (counterfact[i].original_answer, counterfact[i].target) if answer})
        for template, indices in templates.records.items()
    }
    facts = SubjectFacts(counterfact, templates, {record.subject for record in zsre if record.subject})
    relation_stems = {
        template: set().union(*(content_stems(t) for t in templates.same_relation(template))) for template in templates.templates
    }
    choices: list[tuple[str, list[str]]] = []  # (subject, templates of other relations)
    for record, template in zip(counterfact, templates.of_record):
        if template is not None:
            choices.append((record.subject, [t for t in templates.other_relations(template) if t not in facts.taken(record.subject)]))
    for record in zsre:
        if record.subject:
            own = {record.target.lower(), record.original_answer.lower()}
            asked = content_stems(" ".join([record.prompt, *record.rephrases]).replace(record.subject, " "))
            others = [
                t for t in templates.templates
                if not own & templates.answers[t] and t not in facts.taken(record.subject) and not asked & relation_stems[t]
            ]
            choices.append((record.subject, others))
    choices = [(subject, others) for subject, others in choices if others]
    while True:
        subject, others = rng.choice(choices)
        template = rng.choice(others)
        yield fill(template, subject), rng.choice(answers[template]), subject


# Words of questions and templates that say nothing about the relation asked.
_FUNCTION_WORDS = frozenset(
    "what which where when whom whose that this with from does have been name into there their they also "
    "other part kind type called known would could should about some many much year".split()
)


def content_stems(text: str) -> set[str]:
    """The first five letters of each content word of `text` ("manufactured" and "manufacturer" meet
    at "manuf", "located" and "location" at "locat"), for telling a question's relation from a template's."""
    words = re.findall(r"[a-z]+", text.lower())
    return {word[:5] for word in words if len(word) >= 4 and word not in _FUNCTION_WORDS}
