"""Training data beyond an experiment's own training split: more edits, more locality inputs,
in a stated mixture, and never anything from the evaluation files.

An experiment config says (every key optional):

    train_repeat: 5          # the experiment's own training records, repeated (oversampled)
    extra_train:             # more edit records, each source repeated `repeat` times
      - {dataset: counterfact, split: train, limit: null, repeat: 1, validation_fraction: 0.0}
    extra_locality:          # (question, answer) pairs added to every training record's locality inputs
      {dataset: nq, split: dev, per_record: 1}
    held_out:                # evaluation files nothing may be taken from
      - {dataset: zsre, split: dev}

An extra source's `validation_fraction` (default 0) holds that share of it out for validation
beside the experiment's own, before repeating. Every record is tagged with the data set it
comes from (`extra["dataset"]`); a source (or the experiment) with `relation_negatives: false`
gets no relation hard negatives from SERAC's training.

A training record (of any source) that shares a prompt, rephrase, locality or portability
prompt with a held-out record is dropped, and so is an extra locality question that occurs
in a held-out file. Texts are compared case-insensitively, stripped.
"""

import logging
import random
from collections.abc import Iterable
from dataclasses import replace

from serac.core.records import EditRecord
from serac.core.setting_checks import check_int

log = logging.getLogger(__name__)


def record_texts(record: EditRecord) -> set[str]:
    """Every input text of a record, normalised for comparison."""
    texts = (record.prompt, *record.rephrases, *record.locality_prompts, *record.portability_prompts)
    return {normalise(text) for text in texts}


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def without_held_out(records: list[EditRecord], held_out_texts: set[str], what: str) -> list[EditRecord]:
    """The records that share no input text with the held-out data."""
    kept = [record for record in records if not record_texts(record) & held_out_texts]
    if len(kept) < len(records):
        log.info("%s: dropped %d of %d records that share a text with the held-out data", what, len(records) - len(kept), len(records))
    return kept


def repeated(records: list[EditRecord], repeat, what: str) -> list[EditRecord]:
    return records * check_int(repeat, f"{what} repeat", 1)


def with_extra_locality(
    records: list[EditRecord], pairs: list[tuple[str, str]], per_record, seed: int
) -> list[EditRecord]:
    """Each record with `per_record` more (prompt, answer) locality pairs, dealt from a seeded
    shuffle of `pairs` (reshuffled when used up), so every pair is used about equally often."""
    per_record = check_int(per_record, "extra_locality per_record", 1)
    if not pairs:
        raise ValueError("extra_locality has no (question, answer) pairs left after removing the held-out ones")
    dealt = _deal(pairs, random.Random(seed))
    extended = []
    for record in records:
        added = [next(dealt) for _ in range(per_record)]
        extended.append(replace(
            record,
            locality_prompts=record.locality_prompts + tuple(prompt for prompt, _ in added),
            locality_answers=record.locality_answers + tuple(answer for _, answer in added),
        ))
    return extended


def _deal(pairs: list[tuple[str, str]], rng: random.Random) -> Iterable[tuple[str, str]]:
    while True:
        order = pairs[:]
        rng.shuffle(order)
        yield from order
