"""EasyEdit's request format and KnowEdit's per-record files load as EditRecords; bad data is a DataFormatError naming the record."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from serac.core.composed_config import training_records
from serac.core.data import DataFormatError, load_records

CONFIGS = Path(__file__).resolve().parents[3] / "configs"

# As passed to EasyEdit's `BaseEditor.edit`: parallel lists, one entry per edit.
REQUEST = {
    "prompts": ["Ray Charles, the", "The capital of France is"],
    "target_new": ["violin", "Berlin"],
    "ground_truth": ["piano", "Paris"],
    "subject": ["Ray Charles", "France"],
    "rephrase_prompts": ["Ray Charles plays the", "France's capital city is"],
    "locality_inputs": {
        "neighborhood": {"prompt": ["Elton John plays the", None], "ground_truth": ["piano", None]},
        "distracting": {
            "prompt": ["Ray Charles was born in", ["Germany's capital is", "Spain's capital is"]],
            "ground_truth": ["Albany", ["Berlin", "Madrid"]],
        },
    },
    "portability_inputs": {
        "one_hop": {
            "prompt": ["Ray Charles's instrument has", "The Eiffel Tower stands in"],
            "ground_truth": ["strings", ["Berlin", "Berlin, Germany"]],
        }
    },
}

# Shaped as KnowEdit's WikiData_recent and ZsRE test files.
KNOWEDIT = [
    {
        "subject": "Leo Arons",
        "prompt": "The place of death of Leo Arons is",
        "target_new": "Berlin",
        "portability": {
            "Reasoning": [
                {
                    "prompt": "The continent of the place of death of Leo Arons is",
                    "ground_truth": [["Europe", "Old Continent"]],
                }
            ],
            "Subject_Aliasing": [
                {"prompt": "The place of death of Martin Leo Arons is", "ground_truth": [["Berlin", "DE-BE"]]}
            ],
        },
        "locality": {
            "Relation_Specificity": [
                {"prompt": "The name of the father of Leo Arons is", "ground_truth": [["Albert Arons"]]},
                {"prompt": "The field of work of Leo Arons is", "ground_truth": [["experimental physics", "physics"]]},
            ]
        },
    },
    {
        "subject": "Epaspidoceras",
        "target_new": "Noctuidae",
        "prompt": "Which family does Epaspidoceras belong to?",
        "ground_truth": ["Aspidoceratidae"],
        "rephrase_prompt": "What family are Epaspidoceras?",
        "locality": {
            "Relation_Specificity": [{"prompt": "The taxon rank of Epaspidoceras is", "ground_truth": ["genus"]}]
        },
        "portability": {
            "Reasoning": [
                {
                    "prompt": "What is the common name for the family Epaspidoceras belongs to?",
                    "ground_truth": "Owlet moths",
                }
            ]
        },
    },
]

PER_RECORD = [
    {
        "prompt": "The mother tongue of Danielle Darrieux is",
        "target_new": "English",
        "ground_truth": "French",
        "subject": "Danielle Darrieux",
        "rephrase_prompts": ["Danielle Darrieux speaks", "Danielle Darrieux's first language is"],
    },
    {
        "prompts": "Toko Yasuda plays the",
        "target_new": "piano",
        "locality_inputs": {"neighborhood": {"prompt": "Jimi Hendrix plays the", "ground_truth": "guitar"}},
    },
]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_CACHE", str(tmp_path / "cache"))


def _write(path: Path, content, lines: bool = False) -> str:
    path.write_text("\n".join(json.dumps(row) for row in content) if lines else json.dumps(content), encoding="utf-8")
    return str(path)


def test_request_format_of_parallel_lists_gives_one_record_per_edit(tmp_path):
    ray, paris = load_records("easyedit", _write(tmp_path / "request.json", REQUEST))
    assert (ray.prompt, ray.target, ray.subject, ray.original_answer) == (
        "Ray Charles, the",
        "violin",
        "Ray Charles",
        "piano",
    )
    assert ray.rephrases == ("Ray Charles plays the",)
    assert ray.locality_prompts == ("Elton John plays the", "Ray Charles was born in")
    assert ray.locality_answers == ("piano", "Albany")
    assert ray.extra["locality_groups"] == ["neighborhood", "distracting"]
    assert (ray.portability_prompts, ray.portability_answers) == (("Ray Charles's instrument has",), ("strings",))
    assert ray.source == "request.json#0"
    # A null entry is no input for that edit; a list holds several, one ground truth each.
    assert paris.locality_prompts == ("Germany's capital is", "Spain's capital is")
    assert paris.locality_answers == ("Berlin", "Madrid")
    assert paris.extra["locality_groups"] == ["distracting", "distracting"]
    assert paris.portability_answers == ("Berlin",)
    assert paris.extra["portability_answer_aliases"] == [["Berlin", "Berlin, Germany"]]
    assert paris.source == "request.json#1"


def test_knowedit_records_flatten_every_group_and_keep_answer_aliases(tmp_path):
    arons, zsre = load_records("easyedit", _write(tmp_path / "ZsRE-test-all.json", KNOWEDIT))
    assert (arons.prompt, arons.target, arons.subject, arons.original_answer, arons.rephrases) == (
        "The place of death of Leo Arons is",
        "Berlin",
        "Leo Arons",
        "",
        (),
    )
    assert arons.locality_prompts == ("The name of the father of Leo Arons is", "The field of work of Leo Arons is")
    assert arons.locality_answers == ("Albert Arons", "experimental physics")
    assert arons.extra["locality_groups"] == ["Relation_Specificity", "Relation_Specificity"]
    assert arons.extra["locality_answer_aliases"] == [["Albert Arons"], ["experimental physics", "physics"]]
    assert arons.portability_prompts == (
        "The continent of the place of death of Leo Arons is",
        "The place of death of Martin Leo Arons is",
    )
    assert arons.portability_answers == ("Europe", "Berlin")
    assert arons.extra["portability_groups"] == ["Reasoning", "Subject_Aliasing"]
    assert arons.extra["portability_answer_aliases"] == [["Europe", "Old Continent"], ["Berlin", "DE-BE"]]
    assert (zsre.original_answer, zsre.rephrases) == ("Aspidoceratidae", ("What family are Epaspidoceras?",))
    assert (zsre.locality_prompts, zsre.locality_answers) == (("The taxon rank of Epaspidoceras is",), ("genus",))
    assert zsre.portability_answers == ("Owlet moths",)
    assert zsre.source == "ZsRE-test-all.json#1"


@pytest.mark.parametrize("lines", [False, True], ids=["json-list", "jsonl"])
def test_per_record_objects_take_singular_or_plural_names_and_strings_or_lists(tmp_path, lines):
    path = _write(tmp_path / ("edits.jsonl" if lines else "edits.json"), PER_RECORD, lines)
    darrieux, yasuda = load_records("easyedit", path)
    assert (darrieux.prompt, darrieux.target, darrieux.original_answer, darrieux.subject) == (
        "The mother tongue of Danielle Darrieux is",
        "English",
        "French",
        "Danielle Darrieux",
    )
    assert darrieux.rephrases == ("Danielle Darrieux speaks", "Danielle Darrieux's first language is")
    assert darrieux.locality_prompts == ()
    assert (yasuda.prompt, yasuda.target, yasuda.subject) == ("Toko Yasuda plays the", "piano", "")
    assert (yasuda.locality_prompts, yasuda.locality_answers) == (("Jimi Hendrix plays the",), ("guitar",))
    assert load_records("easyedit", path, limit=1) == [darrieux]


def test_a_subject_missing_from_its_prompt_is_kept_with_a_warning(tmp_path, caplog):
    rows = [{"prompt": "The capital of France is", "target_new": "Berlin", "subject": "Spain"}]
    (record,) = load_records("easyedit", _write(tmp_path / "edits.json", rows))
    assert record.subject == "Spain"
    assert "1 record(s) name a subject that is not in the prompt: [0]" in caplog.text


GOOD = {"prompt": "The capital of France is", "target_new": "Berlin"}
MALFORMED = [
    ("missing prompt", [GOOD, {"target_new": "Berlin"}], r"edits.json: record 1: has no prompt / prompts"),
    ("missing target", [GOOD, GOOD, {"prompt": "The capital of Spain is"}], r"edits.json: record 2: has no target_new"),
    ("empty prompt", [{**GOOD, "prompt": "  "}], r"edits.json: record 0: field 'prompt' must not be empty"),
    ("number target", [GOOD, {**GOOD, "target_new": 7}], r"edits.json: record 1: field 'target_new' must be a string"),
    ("number subject", [{**GOOD, "subject": 3}], r"edits.json: record 0: field 'subject' must be a string"),
    (
        "too long",
        [GOOD, {**GOOD, "prompt": "x" * 5000}],
        r"edits.json: record 1: field 'prompt' is 5000 characters long",
    ),
    (
        "empty ground truth",
        [{**GOOD, "ground_truth": []}],
        r"edits.json: record 0: field 'ground_truth' holds no answer",
    ),
    (
        "locality not groups",
        [GOOD, {**GOOD, "locality": ["a"]}],
        r"edits.json: record 1: field 'locality' must map group names",
    ),
    (
        "locality without answer",
        [{**GOOD, "locality": {"rs": [{"prompt": "The capital of Spain is"}]}}],
        r"edits.json: record 0: locality.rs inputs must be",
    ),
    (
        "number locality answer",
        [{**GOOD, "locality": {"rs": [{"prompt": "Spain's capital is", "ground_truth": [5]}]}}],
        r"edits.json: record 0: locality.rs ground_truth must be a string",
    ),
    (
        "unequal lists",
        {"prompts": ["a is", "b is"], "target_new": ["x"]},
        r"edits.json: field 'target_new' has 1 entries for 2 prompts",
    ),
    (
        "unequal group lists",
        {
            "prompts": ["a is", "b is"],
            "target_new": ["x", "y"],
            "locality_inputs": {"n": {"prompt": ["c is", "d is"], "ground_truth": ["z"]}},
        },
        r"field 'locality_inputs.n.ground_truth' has 1 entries for 2 prompts",
    ),
    (
        "empty entry in lists",
        {"prompts": ["a is", ""], "target_new": ["x", "y"]},
        r"edits.json: record 1: field 'prompts' must not be empty",
    ),
    ("not json", "{broken", r"edits.json: cannot be loaded as EasyEdit data \(ArrowInvalid"),
]


@pytest.mark.parametrize("content,message", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_data_is_a_data_format_error_naming_the_record(tmp_path, content, message):
    path = tmp_path / "edits.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        _write(path, content)
    with pytest.raises(DataFormatError, match=message):
        load_records("easyedit", str(path))


def test_a_missing_or_empty_file_is_a_data_format_error(tmp_path):
    with pytest.raises(DataFormatError, match="no such data file"):
        load_records("easyedit", str(tmp_path / "absent.json"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataFormatError, match="empty.jsonl: the file is empty"):
        load_records("easyedit", str(tmp_path / "empty.jsonl"))


def test_a_hub_data_set_while_offline_is_a_clear_data_format_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # Set after start: `datasets` read the variable at import (a run started offline is the next test's case).
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("serac.core.easyedit_format.hub_unreachable", lambda: "offline (HF_HUB_OFFLINE is set)")
    with pytest.raises(
        DataFormatError,
        match=r"'zjunlp/KnowEdit:test' is not a local file, so it names a hub data set, but the hub is offline",
    ):
        load_records("easyedit", "zjunlp/KnowEdit:test")


def test_a_hub_data_set_not_in_the_offline_cache_is_a_clear_data_format_error(monkeypatch):
    # As when HF_HUB_OFFLINE=1 was set before start: `datasets` looks only in its cache.
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("serac.core.easyedit_format.hub_unreachable", lambda: "offline (HF_HUB_OFFLINE is set)")
    with pytest.raises(
        DataFormatError, match=r"zjunlp/KnowEdit: cannot be loaded as EasyEdit data \(.*zjunlp/KnowEdit"
    ):
        load_records("easyedit", "zjunlp/KnowEdit")


def test_a_split_that_is_neither_file_nor_hub_id_is_named():
    with pytest.raises(DataFormatError, match=r"'not a file!' is neither a .json/.jsonl file nor a hub data set id"):
        load_records("easyedit", "not a file!")


def _composed(command: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(command, overrides=["experiment=easyedit", "model=tiny-llama", *overrides])


def test_the_easyedit_experiment_evaluates_and_trains_on_the_files_it_is_given(tmp_path):
    edits = _write(tmp_path / "edits.json", KNOWEDIT + PER_RECORD)
    config = _composed("evaluate", [f"experiment.eval_split={edits}"])
    records = load_records(config.experiment.dataset, config.experiment.eval_split, config.data_dir)
    assert [record.source for record in records] == [f"edits.json#{index}" for index in range(4)]
    config = _composed(
        "train", ["alg=serac_quick", f"experiment.train_split={edits}", f"experiment.eval_split={edits}"]
    )
    train, validation = training_records(OmegaConf.to_container(config))
    assert len(train) + len(validation) == 4 and {record.source for record in train + validation} == {
        r.source for r in records
    }


def test_the_easyedit_experiment_takes_a_hub_id_with_a_split():
    assert (
        _composed("evaluate", ["experiment.eval_split=zjunlp/KnowEdit:test"]).experiment.eval_split
        == "zjunlp/KnowEdit:test"
    )


def test_wikibio_and_wikibigedit_field_names_map_as_easyedit_reads_them(tmp_path):
    rows = [
        {
            "text": "This is a passage about john reynolds.",
            "labels": "He was a neurologist.",
            "concept": "john reynolds",
        },
        {
            "subject": "Leo Arons",
            "update": "The place of death of Leo Arons is",
            "ans": "Berlin",
            "rephrase": "Leo Arons died in",
            "loc": "The capital of Spain is",
            "loc_ans": "Madrid",
            "mhop": "The mayor of the place of death of Leo Arons is",
            "mhop_ans": "Kai Wegner",
            "personas": "As a historian: the place of death of Leo Arons is",
        },
    ]
    wikibio, wikibigedit = load_records("easyedit", _write(tmp_path / "wiki.json", rows))
    assert (wikibio.prompt, wikibio.target, wikibio.subject) == (rows[0]["text"], rows[0]["labels"], "john reynolds")
    assert (wikibigedit.prompt, wikibigedit.target, wikibigedit.rephrases) == (
        rows[1]["update"],
        "Berlin",
        ("Leo Arons died in",),
    )
    assert (wikibigedit.locality_prompts, wikibigedit.locality_answers) == (("The capital of Spain is",), ("Madrid",))
    assert wikibigedit.portability_prompts == (rows[1]["mhop"], rows[1]["personas"])
    assert wikibigedit.portability_answers == ("Kai Wegner", "Berlin")
    assert wikibigedit.extra["portability_groups"] == ["mhop", "personas"]
