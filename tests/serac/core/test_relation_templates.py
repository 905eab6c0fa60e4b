"""Relation templates of subject-relation edits, and which templates ask for another relation."""

from serac.core.records import EditRecord
from serac.core.relation_templates import RelationTemplates, fill, relation_template


def fact(prompt: str, subject: str, truth: str, target: str) -> EditRecord:
    return EditRecord(prompt=prompt, target=target, subject=subject, original_answer=truth)


RECORDS = [
    fact("The mother tongue of Danielle Darrieux is", "Danielle Darrieux", "French", "English"),
    fact("The mother tongue of Thomas Joannes Stieltjes is", "Thomas Joannes Stieltjes", "Dutch", "English"),
    fact("Toko Yasuda, the", "Toko Yasuda", "guitar", "piano"),
    fact("Paris is located in", "Paris", "France", "Japan"),
    fact("Cairo is in", "Cairo", "Egypt", "France"),  # shares an answer (France) with "is located in"
    fact("What is the capital of France?", "", "", "Lyon"),  # no subject: no template
]


def test_a_template_is_the_prompt_without_its_subject():
    assert relation_template(RECORDS[0]) == "The mother tongue of {} is"
    assert relation_template(RECORDS[5]) is None
    assert fill("{} is located in", "Rome") == "Rome is located in"


def test_templates_sharing_an_answer_are_one_relation_the_others_are_other_relations():
    templates = RelationTemplates(RECORDS)
    assert templates.records["The mother tongue of {} is"] == [0, 1]
    others = templates.other_relations("{} is located in")
    assert "{} is in" not in others and "{} is located in" not in others
    assert others == ["The mother tongue of {} is", "{}, the"]
    assert "The mother tongue of {} is" not in templates.other_relations("The mother tongue of {} is")
