"""Which facts of each subject the real CounterFact edits rewrite or ask about, so that the scale
benchmark neither generates a distractor that is an edit of such a fact nor probes an edit whose
question (or locality prompt) another real edit in the memory rightly answers.

A subject can have several real edits (Mexico City's twin city, twice, with different true
objects and targets: one question, two edits), and a real edit's subject can be named by another
edit's neighbourhood prompt ("The twin city of Budapest is" while "Budapest is a twin city of" ->
"Nottingham" is in the memory). An editor that answers such a query with the other edit is right,
and a benchmark that counts it as a failure measures its own data, not the editor.
Relations are told apart by templates as in `serac.core.relation_templates`: two templates may
be one relation when they share an answer.
"""

import string
from collections import defaultdict

from serac.core.records import EditRecord
from serac.core.relation_templates import RelationTemplates

_LONGEST_SUBJECT_WORDS = 12
_EDGE_PUNCTUATION = string.punctuation + "“”‘’"


class SubjectFacts:
    def __init__(self, counterfact: list[EditRecord], templates: RelationTemplates, subjects: set[str]):
        """`subjects`: the subjects to look for in neighbourhood prompts (CounterFact's own are always included)."""
        self.templates = templates
        self.subjects = subjects | {record.subject for record in counterfact if record.subject}
        self.edited: dict[str, list[tuple[int, str]]] = defaultdict(list)  # subject -> (record index, template)
        self.asked: dict[str, list[tuple[int, str]]] = defaultdict(list)  # subject named by record index's neighbour prompts
        for index, (record, template) in enumerate(zip(counterfact, templates.of_record)):
            if template is None:
                continue
            self.edited[record.subject].append((index, template))
            for prompt in record.locality_prompts:
                for subject in self.named_subjects(prompt):
                    self.asked[subject].append((index, template))

    def taken(self, subject: str) -> set[str]:
        """Templates of every relation `subject` is edited in, or asked about by a neighbourhood prompt."""
        return set().union(*(self.templates.same_relation(t) for _, t in self.edited.get(subject, []) + self.asked.get(subject, [])))

    def edited_elsewhere(self, subject: str, template: str, index: int | None = None) -> bool:
        """Whether a real edit other than record `index` rewrites `subject` in `template`'s relation."""
        relation = self.templates.same_relation(template)
        return any(other != index and t in relation for other, t in self.edited.get(subject, []))

    def named_subjects(self, prompt: str) -> set[str]:
        """The known subjects that occur in `prompt` as whole words (trailing punctuation and "'s" aside)."""
        words = prompt.split()
        found = set()
        for start in range(len(words)):
            for end in range(start + 1, min(len(words), start + _LONGEST_SUBJECT_WORDS) + 1):
                phrase = " ".join(words[start:end])
                for candidate in (phrase, phrase.strip(_EDGE_PUNCTUATION), phrase.removesuffix("'s"), phrase.removesuffix("’s")):
                    if candidate in self.subjects:
                        found.add(candidate)
        return found
