"""Loaders that turn zsRE, CounterFact, NQ, PersonalityEdit, ConvSent and EasyEdit/KnowEdit files into `EditRecord`s.

The data folder is, in order: the `data_dir` argument (config key `data.dir`), the
`SERAC_DATA` environment variable, then `../shared/data` beside the project.
"""

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import datasets

from serac.core.data_errors import DataFormatError
from serac.core.easyedit_format import EASYEDIT, load_easyedit_records
from serac.core.records import EditRecord

# The 13 question templates of SERAC's ConvSent task, reused by PersonalityEdit.
CONVSENT_TEMPLATES = (
    "What do you think of {}?",
    "What do you feel about {}?",
    "How do you view {}?",
) + tuple(
    f"What is your {position} {{}}?"
    for position in (
        "opinion of", "stance on", "position on", "attitude about", "view on",
        "take on", "impression of", "assessment of", "judgment of", "sentiment of",
    )
)
PERSONALITY_TRAITS = ("extraversion", "agreeableness", "neuroticism")
_NQ_PREFIX = "nq question: "
log = logging.getLogger(__name__)


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("SERAC_DATA"):
        return Path(os.environ["SERAC_DATA"]).expanduser()
    project_root = Path(__file__).resolve().parents[2]
    for candidate in (project_root.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return project_root.parent / "shared" / "data"


def load_records(
    dataset: str, split: str, data_dir_override: str | os.PathLike | None = None, limit: int | None = None
) -> list[EditRecord]:
    """Records of `dataset` ("zsre", "counterfact", "nq", "personality", "convsent", "easyedit") for `split`.

    `split` is a split name ("train", "dev", "val") looked up in the data folder, or a path
    to a file in that dataset's format. For "easyedit" it is a .json/.jsonl file or a hub data
    set id in EasyEdit's or KnowEdit's format (`serac.core.easyedit_format`).
    """
    if dataset == EASYEDIT:
        records = load_easyedit_records(split)
    elif dataset in _FORMATS:
        extension, parse = _FORMATS[dataset]
        path = Path(split) if Path(split).suffix else data_dir(data_dir_override) / dataset / f"{split}{extension}"
        records = parse(_read_rows(path), path)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(sorted([*_FORMATS, EASYEDIT]))}")
    return records[:limit] if limit is not None else records


def records_to_dataset(records: list[EditRecord]) -> datasets.Dataset:
    """A Hugging Face `datasets.Dataset` view of the records (for mapping, shuffling, sharing)."""
    rows = [record.to_dict() for record in records]
    for row in rows:
        row["extra"] = json.dumps(row["extra"])
    return datasets.Dataset.from_list(rows)


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataFormatError(f"{path}: no such data file (set data.dir or SERAC_DATA to the data folder)")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise DataFormatError(f"{path}: expected a list of JSON objects")
    if not rows:
        raise DataFormatError(f"{path}: the file holds no records")
    return rows


def _field(row: dict, name: str, path: Path, index: int, kind: type = str):
    if name not in row:
        raise DataFormatError(f"{path}: record {index} has no field {name!r}")
    value = row[name]
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise DataFormatError(f"{path}: record {index} field {name!r} must be a non-empty {kind.__name__}, got {value!r}")
    return value


def _strings(row: dict, name: str, path: Path, index: int) -> tuple[str, ...]:
    values = _field(row, name, path, index, list)
    if not values or not all(isinstance(value, str) and value.strip() for value in values):
        raise DataFormatError(f"{path}: record {index} field {name!r} must be a non-empty list of strings")
    return tuple(values)


def _parse_zsre(rows: list[dict], path: Path) -> list[EditRecord]:
    records = []
    empty_targets = [index for index, row in enumerate(rows) if row.get("alt") == ""]
    if empty_targets:
        # The public zsRE train split has a couple of edits with no target; there is nothing to edit.
        log.warning("%s: skipping %d record(s) with an empty edit target: %s", path, len(empty_targets), empty_targets)
    for index, row in enumerate(rows):
        if index in empty_targets:
            continue
        portability = row.get("portability") or {}
        if not isinstance(portability, dict):
            raise DataFormatError(f"{path}: record {index} field 'portability' must be an object")
        has_portability = bool(portability.get("New Question")) and bool(portability.get("New Answer"))
        records.append(
            EditRecord(
                prompt=_field(row, "src", path, index),
                target=_field(row, "alt", path, index),
                rephrases=(_field(row, "rephrase", path, index),),
                locality_prompts=(_field(row, "loc", path, index).removeprefix(_NQ_PREFIX),),
                locality_answers=(_field(row, "loc_ans", path, index),),
                portability_prompts=(portability["New Question"],) if has_portability else (),
                portability_answers=(portability["New Answer"],) if has_portability else (),
                subject=row.get("subject", ""),
                original_answer=(row.get("answers") or [""])[0],
                source=f"{path.name}#{index}",
            )
        )
    return records


def _parse_counterfact(rows: list[dict], path: Path) -> list[EditRecord]:
    return [
        EditRecord(
            prompt=_field(row, "prompt", path, index),
            target=_field(row, "target_new", path, index),
            rephrases=(_field(row, "rephrase_prompt", path, index),),
            locality_prompts=(_field(row, "locality_prompt", path, index),),
            locality_answers=(_field(row, "locality_ground_truth", path, index),),
            subject=row.get("subject", ""),
            original_answer=row.get("ground_truth", ""),
            source=f"{path.name}#{index}",
        )
        for index, row in enumerate(rows)
    ]


def _parse_nq(rows: list[dict], path: Path) -> list[EditRecord]:
    return [
        EditRecord(
            prompt=_field(row, "question", path, index),
            target=_strings(row, "answer", path, index)[0],
            extra={"answers": list(row["answer"])},
            source=f"{path.name}#{index}",
        )
        for index, row in enumerate(rows)
    ]


def _topic_records(
    topics: list[str], replies: list[dict[str, tuple[str, ...]]], descriptor: str, path: Path
) -> list[EditRecord]:
    """One dialogue edit per topic; the target label rotates over the labels so each is used.

    In-scope inputs are the 13 ConvSent questions about the topic; out-of-scope inputs are
    the same questions about the next topic.
    """
    records = []
    for index, (topic, by_label) in enumerate(zip(topics, replies)):
        labels = list(by_label)
        label = labels[index % len(labels)]
        other_topic = topics[(index + 1) % len(topics)]
        records.append(
            EditRecord(
                prompt=f"Topic: {topic}. {descriptor}:",  # + " " + target reads "Topic: X. Sentiment: positive"
                target=label,
                rephrases=tuple(template.format(topic) for template in CONVSENT_TEMPLATES),
                locality_prompts=tuple(template.format(other_topic) for template in CONVSENT_TEMPLATES),
                subject=topic,
                target_replies=by_label[label],
                contrast_replies=tuple(reply for other in labels if other != label for reply in by_label[other]),
                source=f"{path.name}#{index}",
            )
        )
    return records


def _parse_personality(rows: list[dict], path: Path) -> list[EditRecord]:
    topics = [_field(row, "ent", path, index) for index, row in enumerate(rows)]
    replies = [{trait: _strings(row, trait, path, index) for trait in PERSONALITY_TRAITS} for index, row in enumerate(rows)]
    return _topic_records(topics, replies, "Personality", path)


def _parse_convsent(rows: list[dict], path: Path) -> list[EditRecord]:
    topics = [_field(row, "ent", path, index) for index, row in enumerate(rows)]
    replies = [
        {"positive": _strings(row, "pos", path, index), "negative": _strings(row, "neg", path, index)}
        for index, row in enumerate(rows)
    ]
    return _topic_records(topics, replies, "Sentiment", path)


_FORMATS: dict[str, tuple[str, Callable[[list[dict], Path], list[EditRecord]]]] = {
    "zsre": (".json", _parse_zsre),
    "counterfact": (".json", _parse_counterfact),
    "nq": (".jsonl", _parse_nq),
    "personality": (".json", _parse_personality),
    "convsent": (".json", _parse_convsent),
}
