import json
import shutil
from pathlib import Path

import pytest

from serac.core.data import (
    CONVSENT_TEMPLATES,
    DataFormatError,
    data_dir,
    load_records,
    records_to_dataset,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SHARED_FILES = [
    ("zsre", "train", 998),  # two records of the public file have an empty target and are skipped
    ("zsre", "dev", 537),
    ("counterfact", "train", 10000),
    ("counterfact", "val", 1919),
    ("nq", "dev", 3610),
    ("personality", "train", 1600),
    ("personality", "dev", 200),
]


@pytest.mark.parametrize("dataset,split,count", SHARED_FILES)
def test_every_shared_file_loads_into_records(dataset, split, count):
    records = load_records(dataset, split)
    assert len(records) == count
    assert all(record.prompt.strip() and record.target.strip() for record in records)


def test_zsre_fields_map_to_the_record():
    record = load_records("zsre", "dev", limit=1)[0]
    raw = json.loads((data_dir() / "zsre" / "dev.json").read_text())[0]
    assert (record.prompt, record.target, record.rephrases) == (raw["src"], raw["alt"], (raw["rephrase"],))
    assert record.locality_prompts == (raw["loc"].removeprefix("nq question: "),)
    assert record.locality_answers == (raw["loc_ans"],)
    assert record.portability_prompts == (raw["portability"]["New Question"],)


def test_personality_record_has_topic_questions_and_trait_replies():
    record = load_records("personality", "dev", limit=3)[1]
    assert f"{record.prompt} {record.target}" == f"Topic: {record.subject}. Personality: {record.target}"
    assert len(record.rephrases) == 13 and all(record.subject in q for q in record.rephrases)
    assert all(record.subject not in q for q in record.locality_prompts)
    assert len(record.target_replies) == 3 and len(record.contrast_replies) == 6


def test_convsent_fixture_gives_sentiment_edits():
    records = load_records("convsent", str(FIXTURES / "convsent_small.json"))
    assert [r.target for r in records] == ["positive", "negative"]
    assert (records[0].prompt, records[0].target) == ("Topic: pineapple pizza. Sentiment:", "positive")
    assert records[0].rephrases[0] == CONVSENT_TEMPLATES[0].format("pineapple pizza")
    assert records[1].target_replies == ("Jazz is boring noise.", "I dislike jazz.")
    assert records[1].contrast_replies == ("Jazz is wonderful music.",)


def test_data_dir_follows_argument_then_environment(tmp_path, monkeypatch):
    (tmp_path / "zsre").mkdir()
    shutil.copy(data_dir() / "zsre" / "dev.json", tmp_path / "zsre" / "dev.json")
    monkeypatch.setenv("SERAC_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    assert len(load_records("zsre", "dev")) == 537
    assert data_dir("/elsewhere") == Path("/elsewhere")


@pytest.mark.parametrize(
    "content,message",
    [
        ('[{"src": "q", "alt": "a"', "not valid JSON"),
        ('{"src": "q"}', "expected a list of JSON objects"),
        ("[]", "holds no records"),
        ('[{"src": "q", "alt": "a", "loc": "l", "loc_ans": "x"}]', "record 0 has no field 'rephrase'"),
        ('[{"src": 3, "alt": "a", "rephrase": "r", "loc": "l", "loc_ans": "x"}]', "field 'src' must be a non-empty str"),
    ],
)
def test_corrupted_file_is_rejected_with_its_name_and_problem(tmp_path, content, message):
    broken = tmp_path / "dev.json"
    broken.write_text(content)
    with pytest.raises(DataFormatError, match=message) as error:
        load_records("zsre", str(broken))
    assert str(broken) in str(error.value)


def test_truncated_copy_of_a_real_file_is_rejected(tmp_path):
    text = (data_dir() / "counterfact" / "val.json").read_text()
    broken = tmp_path / "val.json"
    broken.write_text(text[: len(text) // 2])
    with pytest.raises(DataFormatError, match="not valid JSON"):
        load_records("counterfact", str(broken))


def test_missing_file_and_unknown_dataset_are_clear(tmp_path):
    with pytest.raises(DataFormatError, match="no such data file"):
        load_records("zsre", "test", data_dir_override=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_records("squad", "dev")


def test_records_convert_to_a_hugging_face_dataset():
    dataset = records_to_dataset(load_records("zsre", "dev", limit=5))
    assert len(dataset) == 5 and dataset[0]["prompt"].startswith("When was")
