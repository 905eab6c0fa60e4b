"""Relation templates of subject-relation-object edits (CounterFact): a prompt with its
subject taken out ("The mother tongue of {} is"), and which templates ask for another kind
of thing.

The public CounterFact files carry no relation id, so relations are told apart by their
answers: two templates whose answers (true objects and edit targets) never coincide ask
for different relations ("{} is located in" answers with places, "{} speaks the language"
with languages). Templates that share an answer may be one relation in other words ("{}
is in" and "{} is located in") and are never treated as different. This is conservative:
two real relations with overlapping answers (mother tongue, language spoken) count as one.

Used for hard negatives of the scope classifier (same subject, other relation; same
relation, other subject) and for the scale benchmark's generated distractors.
"""

from collections import defaultdict
from collections.abc import Sequence

from serac.core.records import EditRecord

SUBJECT_SLOT = "{}"


def relation_template(record: EditRecord) -> str | None:
    """The record's prompt with its subject replaced by "{}"; None when the prompt does not name it."""
    if not record.subject or record.subject not in record.prompt or SUBJECT_SLOT in record.prompt:
        return None
    return record.prompt.replace(record.subject, SUBJECT_SLOT, 1)


def fill(template: str, subject: str) -> str:
    return template.replace(SUBJECT_SLOT, subject, 1)


class RelationTemplates:
    """The templates of a set of records, the records of each, and the answers each was given."""

    def __init__(self, records: Sequence[EditRecord]):
        self.of_record = [relation_template(record) for record in records]
        self.records: dict[str, list[int]] = defaultdict(list)
        self.answers: dict[str, set[str]] = defaultdict(set)
        for index, (record, template) in enumerate(zip(records, self.of_record)):
            if template is not None:
                self.records[template].append(index)
                self.answers[template].update(answer.lower() for answer in (record.original_answer, record.target) if answer)
        self.templates = sorted(self.records)
        answer_templates: dict[str, set[str]] = defaultdict(set)
        for template, answers in self.answers.items():
            for answer in answers:
                answer_templates[answer].add(template)
        self._sharing = {
            template: set().union(*(answer_templates[answer] for answer in answers)) if answers else {template}
            for template, answers in self.answers.items()
        }

    def same_relation(self, template: str) -> set[str]:
        """Templates that may ask for the same relation as `template`: itself and every template sharing an answer with it."""
        return self._sharing.get(template, {template})

    def other_relations(self, template: str) -> list[str]:
        """Templates that share no answer with `template` (and so ask for another relation), sorted."""
        sharing = self.same_relation(template)
        return [other for other in self.templates if other not in sharing]
