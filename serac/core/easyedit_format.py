"""EasyEdit's edit requests and KnowEdit's records as `EditRecord`s, so users bring their data unchanged.

Where the formats are defined: EasyEdit (Wang et al. 2024, github.com/zjunlp/EasyEdit: the
arguments of `BaseEditor.edit` and `editors/utils.py:_prepare_requests`); KnowEdit (Zhang et al.
2024, "A Comprehensive Study of Knowledge Editing for Large Language Models", arXiv:2401.01286;
hub data set zjunlp/KnowEdit: ZsRE, WikiData_recent, WikiData_counterfact, WikiBio); WikiBigEdit
(Thede et al. 2025, hub data set lukasthede/WikiBigEdit), read as EasyEdit's `WikiBigEditDataset`
reads it.

Two shapes:
- requests: one JSON object holding `BaseEditor.edit`'s arguments as parallel lists, one entry
  per edit: {"prompts", "target_new", "ground_truth", "subject", "rephrase_prompts",
  "locality_inputs": {group: {"prompt": [...], "ground_truth": [...]}}, "portability_inputs"};
  an edit's entry in a group is a prompt, a list of prompts, or null (none for that edit).
- records: a JSON list, a JSONL file or a hub data set of one object per edit (KnowEdit's files,
  EasyEdit's prepared requests): {"prompt", "target_new", "ground_truth", "subject",
  "rephrase_prompt", "locality": {group: [{"prompt", "ground_truth"}, ...]}, "portability"}; a
  group may also be a single {"prompt", "ground_truth"} object.

Field (the first alias present)                           EditRecord
  prompt | prompts | text (WikiBio) | update (WikiBigEdit) prompt
  target_new | labels (WikiBio) | ans (WikiBigEdit)        target
  subject | concept (WikiBio)                              subject (kept, with a warning, when not in the prompt)
  ground_truth                                             original_answer
  rephrase_prompt | rephrase_prompts | rephrase            rephrases
  locality | locality_inputs; loc + loc_ans (WikiBigEdit)  locality_prompts, locality_answers
  portability | portability_inputs; mhop + mhop_ans,       portability_prompts, portability_answers
    personas (answered by the target) (WikiBigEdit)

A ground truth is a string, a list of answers, or a list of alias lists (KnowEdit's Wiki files:
[["Berlin", "Berlin, Germany"]]); its first string is the answer. All groups are flattened into
one tuple each; `extra` keeps every input's group name and all its answers' strings, and all the
edit's own ground-truth strings. `source` is "<file or data set>#<index>".
"""

import logging
from pathlib import Path

import datasets
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from serac.core.data_errors import DataFormatError
from serac.core.hub import cache_dir, hub_unreachable
from serac.core.records import EditRecord
from serac.core.text_checks import check_text

EASYEDIT = "easyedit"
_PROMPT = ("prompt", "prompts", "text", "update")
_TARGET = ("target_new", "labels", "ans")
_SUBJECT = ("subject", "concept")
_REPHRASES = ("rephrase_prompt", "rephrase_prompts", "rephrase")
_LOCALITY = ("locality", "locality_inputs")
_PORTABILITY = ("portability", "portability_inputs")
_FILE_SUFFIXES = (".json", ".jsonl")
log = logging.getLogger(__name__)


def load_easyedit_records(source: str) -> list[EditRecord]:
    """Records of a local .json/.jsonl file, a remote `hf://datasets/...` file, or a hub data set
    `owner/name` or `owner/name:split`, in either of EasyEdit's shapes."""
    rows, name = _read_rows(source)
    if len(rows) == 1 and isinstance(_first(rows[0], _PROMPT)[1], list):
        rows = _requests_as_rows(rows[0], name)
    records = [_record(row, name, index) for index, row in enumerate(rows)]
    outside = [index for index, record in enumerate(records) if record.subject and record.subject not in record.prompt]
    if outside:
        # ROME and MEMIT refuse such an edit when asked to make it; the other editors never read the subject.
        log.warning("%s: %d record(s) name a subject that is not in the prompt: %s", name, len(outside), outside[:20])
    return records


def _read_rows(source: str) -> tuple[list[dict], str]:
    """The objects of `source` (through `datasets`, which also reads the hub) and its short name."""
    if not isinstance(source, str) or not source.strip():
        raise DataFormatError(f"EasyEdit data is a .json/.jsonl file or a hub data set id, got {source!r}")
    if source.startswith("hf://"):
        _check_hub(source)
        return _load(source, "json", data_files=source), source.rsplit("/", 1)[-1]
    path = Path(source).expanduser()
    if path.suffix in _FILE_SUFFIXES or path.exists():
        if not path.is_file():
            raise DataFormatError(f"{path}: no such data file")
        if path.stat().st_size == 0:
            raise DataFormatError(f"{path}: the file is empty")
        return _load(str(path), "json", data_files=str(path)), path.name
    name, _, split = source.partition(":")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise DataFormatError(
            f"{source!r} is neither a .json/.jsonl file nor a hub data set id (owner/name or owner/name:split)"
        ) from None
    _check_hub(source)
    return _load(source, name, split=split or None), source


def _check_hub(source: str) -> None:
    why = hub_unreachable()
    # With HF_HUB_OFFLINE set before start, `datasets` reads its cache at once; else it would retry for long.
    if why and not datasets.config.HF_HUB_OFFLINE:
        raise DataFormatError(
            f"{source!r} is not a local file, so it names a hub data set, but the hub is {why}. Give a local "
            ".json/.jsonl file, or use a copy loaded earlier by setting HF_HUB_OFFLINE=1 before starting."
        )


def _load(source: str, builder: str, **options) -> list[dict]:
    try:
        loaded = datasets.load_dataset(builder, cache_dir=str(cache_dir() / "datasets"), **options)
    # The hub's, the data set's and the JSON parser's errors alike become one clear message.
    except Exception as error:  # noqa: BLE001
        cause = error.__cause__ or error
        raise DataFormatError(
            f"{source}: cannot be loaded as EasyEdit data ({type(cause).__name__}: {cause})"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise DataFormatError(f"{source} has the splits {sorted(loaded)}; name one, as {source}:<split>")
        (loaded,) = loaded.values()
    rows = loaded.to_list()
    if not rows:
        raise DataFormatError(f"{source}: holds no records")
    return rows


def _requests_as_rows(request: dict, name: str) -> list[dict]:
    """`BaseEditor.edit`'s parallel lists as one record object per edit."""
    count = len(_first(request, _PROMPT)[1])
    rows = [{} for _ in range(count)]
    for field, value in request.items():
        if value is None:
            continue
        if field not in _LOCALITY + _PORTABILITY:
            for row, entry in zip(rows, _per_edit(value, count, field, name)):
                row[field] = entry
            continue
        if not isinstance(value, dict):
            raise DataFormatError(
                f"{name}: field {field!r} must map group names to {{'prompt': [...], 'ground_truth': [...]}}"
            )
        for group, inputs in value.items():
            if not isinstance(inputs, dict) or inputs.get("prompt") is None or inputs.get("ground_truth") is None:
                raise DataFormatError(
                    f"{name}: {field}.{group} must be {{'prompt': [...], 'ground_truth': [...]}}, got {inputs!r}"
                )
            prompts = _per_edit(inputs.get("prompt"), count, f"{field}.{group}.prompt", name)
            truths = _per_edit(inputs.get("ground_truth"), count, f"{field}.{group}.ground_truth", name)
            for row, prompt, truth in zip(rows, prompts, truths):
                if prompt is not None:
                    row.setdefault(field, {})[group] = {"prompt": prompt, "ground_truth": truth}
    return rows


def _per_edit(value, count: int, field: str, name: str) -> list:
    # EasyEdit takes a single edit's value bare, not in a list.
    entries = value if isinstance(value, list) else [value]
    if len(entries) != count:
        raise DataFormatError(
            f"{name}: field {field!r} has {len(entries)} entries for {count} prompts; "
            "the request format needs one per edit"
        )
    return entries


def _record(row: dict, name: str, index: int) -> EditRecord:
    where = f"{name}: record {index}"
    target = _required(row, _TARGET, where)
    subject_field, subject = _first(row, _SUBJECT)
    ground_truth = (
        [] if row.get("ground_truth") is None else _answers(row["ground_truth"], "field 'ground_truth'", where)
    )
    rephrase_field, rephrases = _first(row, _REPHRASES)
    locality = _inputs(row, _LOCALITY, {"loc": "loc_ans"}, where)
    portability = _inputs(row, _PORTABILITY, {"mhop": "mhop_ans"}, where)
    if row.get("personas") is not None:  # WikiBigEdit: the edit restated by a persona, answered by the target
        portability += _group_inputs(
            "personas", {"prompt": row["personas"], "ground_truth": target}, "portability", where
        )
    return EditRecord(
        prompt=_required(row, _PROMPT, where),
        target=target,
        rephrases=tuple(_texts(rephrases, f"field {rephrase_field!r}", where)),
        locality_prompts=tuple(prompt for _, prompt, _ in locality),
        locality_answers=tuple(answers[0] for _, _, answers in locality),
        portability_prompts=tuple(prompt for _, prompt, _ in portability),
        portability_answers=tuple(answers[0] for _, _, answers in portability),
        subject="" if subject is None else _checked(subject, f"field {subject_field!r}", where),
        original_answer=ground_truth[0] if ground_truth else "",
        source=f"{name}#{index}",
        extra={
            "ground_truth": ground_truth,
            "locality_groups": [group for group, _, _ in locality],
            "locality_answer_aliases": [answers for _, _, answers in locality],
            "portability_groups": [group for group, _, _ in portability],
            "portability_answer_aliases": [answers for _, _, answers in portability],
        },
    )


def _first(row: dict, aliases: tuple[str, ...]) -> tuple[str, object]:
    """The first of `aliases` that `row` has a value for (a data set gives a field some rows lack as None)."""
    for alias in aliases:
        if row.get(alias) is not None:
            return alias, row[alias]
    return aliases[0], None


def _checked(value, what: str, where: str) -> str:
    try:
        return check_text(value, what)
    except (TypeError, ValueError) as error:
        raise DataFormatError(f"{where}: {error}") from None


def _required(row: dict, aliases: tuple[str, ...], where: str) -> str:
    field, value = _first(row, aliases)
    if value is None:
        raise DataFormatError(f"{where}: has no {' / '.join(aliases)} field")
    return _checked(value, f"field {field!r}", where)


def _texts(value, what: str, where: str) -> list[str]:
    """A string or a list of strings, as a list."""
    if value is None:
        return []
    return [_checked(text, what, where) for text in (value if isinstance(value, list) else [value])]


def _answers(value, what: str, where: str) -> list[str]:
    """Every string of a ground truth: a string, a list of answers, or a list of alias lists."""
    if not isinstance(value, list):
        return [_checked(value, what, where)]
    strings = [text for item in value for text in _answers(item, what, where)]
    if not strings:
        raise DataFormatError(f"{where}: {what} holds no answer")
    return strings


def _inputs(
    row: dict, aliases: tuple[str, ...], flat_fields: dict[str, str], where: str
) -> list[tuple[str, str, list[str]]]:
    """(group, prompt, answers) of every input of the locality or portability field, and of
    WikiBigEdit's flat prompt/answer fields (`flat_fields`: prompt field -> answer field)."""
    field, groups = _first(row, aliases)
    if groups is not None and not isinstance(groups, dict):
        raise DataFormatError(f"{where}: field {field!r} must map group names to inputs, got {type(groups).__name__}")
    found = [
        triple
        for group, inputs in (groups or {}).items()
        if inputs is not None  # a group only other records have
        for item in (inputs if isinstance(inputs, list) else [inputs])
        for triple in _group_inputs(group, item, field, where)
    ]
    for prompt_field, answer_field in flat_fields.items():
        if row.get(prompt_field) is not None:
            found += _group_inputs(
                prompt_field, {"prompt": row[prompt_field], "ground_truth": row.get(answer_field)}, field, where
            )
    return found


def _group_inputs(group: str, item, field: str, where: str) -> list[tuple[str, str, list[str]]]:
    """One {"prompt", "ground_truth"} object of a group: a prompt and its ground truth, or (EasyEdit's
    requests) a list of prompts and a list of one ground truth each."""
    what = f"{field}.{group}"
    if not isinstance(item, dict) or item.get("prompt") is None or item.get("ground_truth") is None:
        raise DataFormatError(f"{where}: {what} inputs must be {{'prompt', 'ground_truth'}} objects, got {item!r}")
    prompts, truths = item["prompt"], item["ground_truth"]
    if not isinstance(prompts, list):
        return [(group, _checked(prompts, f"{what} prompt", where), _answers(truths, f"{what} ground_truth", where))]
    if not isinstance(truths, list) or len(truths) != len(prompts):
        raise DataFormatError(
            f"{where}: {what} has {len(prompts)} prompts but not one ground truth for each: {truths!r}"
        )
    return [
        (group, _checked(prompt, f"{what} prompt", where), _answers(truth, f"{what} ground_truth", where))
        for prompt, truth in zip(prompts, truths)
    ]
