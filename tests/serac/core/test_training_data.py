"""Training data beyond an experiment's own split: repeated and extra edits, extra locality
inputs, and nothing from the held-out evaluation files."""

import json
from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from serac.core.composed_config import training_records
from serac.core.data import load_records
from serac.core.training_data import normalise, record_texts

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def zsre_row(index: int, loc: str) -> dict:
    return {"subject": f"s{index}", "src": f"Question {index}?", "rephrase": f"Rephrased question {index}?",
            "alt": f"answer {index}", "answers": ["x"], "loc": f"nq question: {loc}", "loc_ans": "y"}


def counterfact_row(index: int, prompt: str) -> dict:
    return {"case_id": index, "prompt": prompt, "subject": f"c{index}", "target_new": "Paris", "ground_truth": "Rome",
            "rephrase_prompt": f"Rephrased fact {index}", "locality_prompt": f"Neighbour {index} is in", "locality_ground_truth": "Rome"}


@pytest.fixture
def data(tmp_path) -> Path:
    files = {
        "zsre/train.json": [zsre_row(i, f"train loc {i}") for i in range(10)],
        "zsre/dev.json": [zsre_row(100, "What year did the war end")],
        "counterfact/train.json": [counterfact_row(i, f"Fact {i} is in") for i in range(3)] + [counterfact_row(3, "Shared prompt is in")],
        "counterfact/val.json": [counterfact_row(9, "  SHARED prompt is in ")],
    }
    for name, rows in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps(rows))
    questions = [{"question": "what year did the war end", "answer": ["1945"]}, {"question": "who wrote hamlet", "answer": ["Shakespeare"]},
                 {"question": "how tall is everest", "answer": ["8,849 m"]}]
    (tmp_path / "nq").mkdir()
    (tmp_path / "nq" / "dev.jsonl").write_text("".join(json.dumps(row) + "\n" for row in questions))
    return tmp_path


def config(data: Path, **experiment) -> dict:
    base = {"dataset": "zsre", "train_split": "train", "validation_fraction": 0.2}
    return {"experiment": base | experiment, "alg": {}, "data_dir": str(data), "seed": 0}


def test_without_extra_keys_the_training_split_less_its_validation_fraction(data):
    train, validation = training_records(config(data))
    assert len(train) == 8 and len(validation) == 2
    assert all(record.locality_prompts == (record.locality_prompts[0],) for record in train)


def test_repeats_extra_edits_extra_locality_and_held_out_texts(data):
    train, validation = training_records(config(
        data,
        train_repeat=3,
        extra_train=[{"dataset": "counterfact", "split": "train", "repeat": 2}],
        extra_locality={"dataset": "nq", "split": "dev", "per_record": 2},
        held_out=[{"dataset": "zsre", "split": "dev"}, {"dataset": "counterfact", "split": "val"}],
    ))
    sources = Counter(record.prompt for record in train)
    assert len(train) == 8 * 3 + 3 * 2  # CounterFact's fourth record shares a prompt with val (case and spaces aside)
    assert sources["Fact 0 is in"] == 2 and "Shared prompt is in" not in sources
    assert all(len(record.locality_prompts) == 1 + 2 for record in train)
    added = Counter(prompt for record in train for prompt in record.locality_prompts[1:])
    assert set(added) == {"who wrote hamlet", "how tall is everest"}  # the war question is zsRE dev's locality input
    assert abs(added["who wrote hamlet"] - added["how tall is everest"]) <= 2  # dealt evenly
    assert all(record.locality_answers[1:] == tuple({"who wrote hamlet": "Shakespeare", "how tall is everest": "8,849 m"}[p]
               for p in record.locality_prompts[1:]) for record in train)
    assert all(len(record.locality_prompts) == 1 for record in validation)  # validation stays as the experiment has it


def test_an_extra_source_can_hold_out_its_own_validation_share_and_every_record_names_its_data_set(data):
    train, validation = training_records(config(
        data, extra_train=[{"dataset": "counterfact", "split": "train", "repeat": 2, "validation_fraction": 0.5,
                            "relation_negatives": False}],
    ))
    by_dataset = Counter(record.extra["dataset"] for record in validation)
    assert by_dataset == {"zsre": 2, "counterfact": 2}  # 20% of 10 zsRE, half of the 4 CounterFact records
    assert Counter(record.extra["dataset"] for record in train) == {"zsre": 8, "counterfact": 2 * 2}
    held_out_prompts = {record.prompt for record in validation}
    assert not any(record.prompt in held_out_prompts for record in train)
    assert all(record.extra.get("relation_negatives", True) is (record.extra["dataset"] == "zsre") for record in train + validation)


def test_bad_mixture_values_are_named(data):
    with pytest.raises(ValueError, match="train repeat must be an int >= 1, got 0"):
        training_records(config(data, train_repeat=0))
    with pytest.raises(ValueError, match="extra_locality per_record must be an int >= 1"):
        training_records(config(data, extra_locality={"dataset": "nq", "split": "dev", "per_record": 1.5}))


@pytest.mark.parametrize("alg, experiment, train_count, validation_count", [
    ("mend", "zsre_mixed", 899 * 5 + 9021, 99),  # MEND's full training mixture; 979 CounterFact train records share a val text
    ("serac_counterfact", "counterfact_zsre", 8119 + 899 * 2, 902 + 99),  # SERAC's: 10% of each source validates
])
def test_the_mixed_experiments_take_nothing_from_zsre_dev_or_counterfact_val(alg, experiment, train_count, validation_count):
    """On the shared data."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        composed = compose("train", overrides=[f"alg={alg}", f"experiment={experiment}", "output_dir=unused"])
    train, validation = training_records(OmegaConf.to_container(composed, resolve=True))
    held_out = {text for dataset, split in (("zsre", "dev"), ("counterfact", "val"))
                for record in load_records(dataset, split) for text in record_texts(record)}
    assert not any(record_texts(record) & held_out for record in train + validation)
    assert len(train) == train_count and len(validation) == validation_count
    assert {normalise(prompt) for record in train for prompt in record.locality_prompts}.isdisjoint(held_out)
