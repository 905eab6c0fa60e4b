"""Training examples for SERAC's two components, built from `EditRecord`s.

Scope classifier: in-scope pairs (edit, the edit's own prompt or a rephrase) and as many
out-of-scope pairs (edit, a locality prompt or a hard negative: the prompt or rephrase of
another edit that the embedder finds close, as in the SERAC paper, and for subject-relation
edits such as CounterFact's the near misses a large memory is full of: the same subject
asked about another relation, the same relation asked about another subject).
Counterfactual model: (edit, in-scope query) -> the edit's answer; for dialogue edits the
answers are the replies in the requested trait or sentiment, each paired with a contrast
reply (another trait, the opposite sentiment) that the model learns to prefer less.
"""

import random
from dataclasses import dataclass

import torch

from serac.core.records import EditRecord
from serac.core.relation_templates import RelationTemplates, fill
from serac.serac.scope_classifier import ScopeClassifier


@dataclass(frozen=True)
class ScopePair:
    edit: str
    query: str
    in_scope: float


@dataclass(frozen=True)
class CounterfactualExample:
    edit_prompt: str
    edit_target: str
    query: str
    answer: str
    contrast: str = ""  # dialogue: a reply the edit should make less likely than `answer`


def in_scope_queries(record: EditRecord) -> list[str]:
    return [record.prompt, *record.rephrases]


def mine_hard_negatives(classifier: ScopeClassifier, records: list[EditRecord], per_edit: int) -> list[list[int]]:
    """For each record, the indexes of the `per_edit` other records whose prompts embed closest to it."""
    vectors = torch.from_numpy(classifier.encode([r.prompt for r in records]))
    similarity = vectors @ vectors.T
    similarity.fill_diagonal_(-2.0)
    # Records may repeat a prompt (several edits of one fact): those are not negatives of each other.
    prompts = [r.prompt for r in records]
    neighbours = similarity.topk(min(per_edit * 2, len(records) - 1), dim=1).indices.tolist()
    return [[j for j in row if prompts[j] != prompts[i]][:per_edit] for i, row in enumerate(neighbours)]


def relation_negatives(records: list[EditRecord], per_kind: int, seed: int = 0) -> list[list[str]]:
    """For each record, up to `per_kind` queries about its subject with another relation (its
    subject in another relation's template) and up to `per_kind` prompts of records with its
    relation and another subject and original answer (none for records without a subject).

    Relations are told apart within each data set of a mixture (`extra["dataset"]`): a zsRE
    question and a CounterFact cloze prompt of one relation rarely share an answer, and would
    otherwise count as two relations, making a paraphrase a negative. Records tagged
    `extra["relation_negatives"] = False` get none: zsRE phrases one relation as many questions
    whose random targets share no answer, so "another relation" would often be a paraphrase."""
    rng = random.Random(seed)
    negatives: list[list[str]] = [[] for _ in records]
    for indexes in _relation_groups(records):
        group = [records[i] for i in indexes]
        for index, queries in zip(indexes, _relation_negatives_within(group, per_kind, rng)):
            negatives[index] = queries
    return negatives


def _relation_groups(records: list[EditRecord]) -> list[list[int]]:
    """The indexes of the records whose relations are told apart together: one group per data
    set of a mixture, without the records tagged `extra["relation_negatives"] = False`."""
    by_dataset: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        if record.extra.get("relation_negatives", True):
            by_dataset.setdefault(record.extra.get("dataset", ""), []).append(index)
    return list(by_dataset.values())


def look_alike_edit_pairs(records: list[EditRecord], per_edit: int, seed: int = 0) -> list[ScopePair]:
    """For each subject-relation record with rephrases, up to `per_edit` out-of-scope pairs whose
    *stored edit* is its subject in another relation's template and whose query is one of its
    rephrases, each beside the in-scope pair (its own prompt, that rephrase) to keep the labels
    balanced.

    Every other negative holds the record's own prompt as the stored edit, and the cross-encoder
    is not symmetric. At 10^6 edits a memory holds dozens of edits of each subject in other
    relations, and CounterFact's loose paraphrases were answered by one of them: "Abrar Alvi
    works as a" (for "Abrar Alvi's profession is an") by the edit "Abrar Alvi works for", p =
    0.999; 35 of the 37 paraphrases lost to another edit at 10^6 (benchmarks/scale/README.md)."""
    rng = random.Random(seed)
    pairs = []
    if per_edit <= 0:
        return pairs
    for indexes in _relation_groups(records):
        group = [records[i] for i in indexes]
        templates = RelationTemplates(group)
        for record, template in zip(group, templates.of_record):
            if template is None or not record.rephrases:
                continue
            others = templates.other_relations(template)
            for other in rng.sample(others, min(per_edit, len(others))):
                query = rng.choice(record.rephrases)
                pairs += [ScopePair(fill(other, record.subject), query, 0.0), ScopePair(record.prompt, query, 1.0)]
    return pairs


def _relation_negatives_within(records: list[EditRecord], per_kind: int, rng: random.Random) -> list[list[str]]:
    templates = RelationTemplates(records)
    negatives = []
    for record, template in zip(records, templates.of_record):
        if template is None:
            negatives.append([])
            continue
        others = templates.other_relations(template)
        same_subject = [fill(other, record.subject) for other in rng.sample(others, min(per_kind, len(others)))]
        same_relation = [
            records[i].prompt for i in templates.records[template]
            if records[i].subject != record.subject and records[i].original_answer != record.original_answer
        ]
        negatives.append(same_subject + rng.sample(same_relation, min(per_kind, len(same_relation))))
    return negatives


def other_dataset_negatives(records: list[EditRecord], per_edit: int, seed: int = 0) -> list[list[str]]:
    """For each record of a mixture, up to `per_edit` queries about its subject in another data
    set's templates of another relation ("When was the inception of {}?" from zsRE for a
    CounterFact subject, "{} speaks the language" for a zsRE one).

    A deployed memory holds both kinds of edit side by side, and these are the look-alikes that
    hurt at scale: among 10^5 edits, a zsRE question's own edit was superseded by a
    CounterFact-style edit of its subject in another relation ("Carlos W. Colby originated
    from" over "What war or battle did Carlos W. Colby fight in?", in scope both ways), a pair
    that the negatives of one data set never show the classifier. A template counts as another
    relation when its answers (with those of the templates sharing an answer with it,
    `RelationTemplates.same_relation`) share none with the record's own relation's. zsRE's
    targets are random, so a zsRE template of the record's relation can pass as another (zsRE
    has ~120 relations, so this label noise is a few percent of these negatives)."""
    rng = random.Random(seed)
    by_dataset: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_dataset.setdefault(record.extra.get("dataset", ""), []).append(index)
    negatives: list[list[str]] = [[] for _ in records]
    if per_edit <= 0 or len(by_dataset) < 2:
        return negatives
    templates = {name: RelationTemplates([records[i] for i in indexes]) for name, indexes in by_dataset.items()}
    relation_answers = {
        name: {template: set().union(*(group.answers[t] for t in group.same_relation(template))) for template in group.templates}
        for name, group in templates.items()
    }
    for name, indexes in by_dataset.items():
        elsewhere = [(template, answers) for other, group in relation_answers.items() if other != name for template, answers in group.items()]
        for index, template in zip(indexes, templates[name].of_record):
            if template is None:
                continue
            answers = relation_answers[name][template]
            others = [other for other, other_answers in elsewhere if answers.isdisjoint(other_answers)]
            negatives[index] = [fill(other, records[index].subject) for other in rng.sample(others, min(per_edit, len(others)))]
    return negatives


def scope_pairs(
    records: list[EditRecord], hard_negatives: list[list[int]], seed: int = 0, extra_negatives: list[list[str]] | None = None
) -> list[ScopePair]:
    """Balanced pairs: for every edit, as many out-of-scope queries as in-scope ones.
    `extra_negatives` (e.g. `relation_negatives`) are all used besides as many of the other
    negatives as there are in-scope queries, and in-scope queries repeat to balance them."""
    rng = random.Random(seed)
    pairs = []
    for index, record in enumerate(records):
        positives = in_scope_queries(record)
        negatives = list(record.locality_prompts)
        for other in hard_negatives[index]:
            negatives.extend(in_scope_queries(records[other]))
        rng.shuffle(negatives)
        extra = list(extra_negatives[index]) if extra_negatives else []
        if extra:
            # On top of the usual share, not instead of it: extras that displaced the mined
            # neighbours left zsRE edits without "the same relation of another subject" (a
            # classifier trained so routed "By which company, German submarine U-270 has been
            # manufactured?" to the U-336 edit at 10^4 edits).
            negatives = extra + negatives[: len(positives)]
            positives = [positives[i % len(positives)] for i in range(len(negatives))]
        count = min(len(positives), len(negatives))
        pairs += [ScopePair(record.prompt, query, 1.0) for query in rng.sample(positives, count)]
        pairs += [ScopePair(record.prompt, query, 0.0) for query in negatives[:count]]
    rng.shuffle(pairs)
    return pairs


def counterfactual_examples(records: list[EditRecord]) -> list[CounterfactualExample]:
    examples = []
    for record in records:
        queries = in_scope_queries(record) if not record.target_replies else list(record.rephrases)
        answers = list(record.target_replies) or [record.target]
        contrasts = list(record.contrast_replies)
        for position, query in enumerate(queries):
            answer = answers[position % len(answers)]
            contrast = contrasts[position % len(contrasts)] if contrasts else ""
            examples.append(CounterfactualExample(record.prompt, record.target, query, answer, contrast))
    return examples
