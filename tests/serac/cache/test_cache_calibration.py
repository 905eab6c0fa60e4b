"""Choosing ε: on known distances, on a tiny model, and through `train_from_config`."""

import json

import numpy as np
import pytest
import torch

from serac.cache import CacheEditor
from serac.cache.calibration import best_threshold, calibrate_epsilon
from serac.cache.config import CacheConfig
from serac.cache.hidden_state_keys import prompt_keys
from serac.core.models import load_language_model
from serac.core.records import EditRecord
from serac.core.registry import trainer
from serac.core.saving import read_editor_config


def test_the_threshold_falls_midway_between_in_and_out_of_scope_distances():
    assert best_threshold(np.array([1.0, 2.0, 3.0]), np.array([5.0, 6.0])) == pytest.approx(4.0)
    # Overlap: 4.1 scores 4/4 + 2/3, better than 2.25 (2/4 + 3/3).
    assert best_threshold(np.array([1.0, 2.0, 3.0, 3.2]), np.array([2.5, 5.0, 6.0])) == pytest.approx(4.1)
    # Everything out of scope is nearer than anything in scope: routing nothing is best.
    assert best_threshold(np.array([8.0, 9.0]), np.array([1.0, 2.0])) == 0.0


def test_calibration_on_a_tiny_model_separates_rephrases_from_locality_prompts():
    language_model = load_language_model("tiny-llama", "cpu")
    records = [
        EditRecord(
            prompt=prompt, target="x", rephrases=(prompt + " ",), locality_prompts=(locality,), locality_answers=("y",)
        )
        for prompt, locality in [
            ("What is the capital of France?", "The quick brown fox jumps over the lazy dog."),
            ("Who wrote Hamlet?", "football 1945 1066 2024 football"),
        ]
    ]
    edits = prompt_keys(language_model, [r.prompt for r in records], 8)
    in_scope = (prompt_keys(language_model, [r.rephrases[0] for r in records], 8) - edits).norm(dim=-1)
    out_of_scope = (
        torch.cdist(prompt_keys(language_model, [r.locality_prompts[0] for r in records], 8), edits).min(1).values
    )
    assert in_scope.max() < out_of_scope.min()  # the data is separable, so the rates reach 1

    calibration = calibrate_epsilon(language_model, records, batch_size=8)
    assert in_scope.max() < calibration.epsilon < out_of_scope.min()
    best = calibration.rates["ε*"]
    assert (best.in_scope_recall, best.out_of_scope_rejection) == (1.0, 1.0)
    assert [rates.epsilon for rates in calibration.rates.values()] == pytest.approx(
        [calibration.epsilon / 2, calibration.epsilon, calibration.epsilon * 2]
    )


def test_calibration_needs_rephrases_and_locality_prompts():
    language_model = load_language_model("tiny-llama", "cpu")
    with pytest.raises(ValueError, match="rephrases and locality prompts"):
        calibrate_epsilon(language_model, [EditRecord(prompt="a?", target="b")], batch_size=8)


def test_train_from_config_saves_a_calibrated_editor(tmp_path):
    config = {
        "model": {"name": "tiny-llama", "prompt_format": "plain"},
        "alg": {"name": "cache", "cache": {"epsilon": 1.0}, "train_limit": 40},
        "experiment": {"dataset": "zsre", "train_split": "train", "validation_fraction": 0.1, "extra_train": []},
        "data_dir": None,
        "device": "cpu",
        "seed": 0,
    }
    saved = trainer("cache")(config, tmp_path)

    saved_config = read_editor_config(saved, "cache", CacheConfig)
    epsilon = saved_config.epsilon
    assert saved_config.calibrated_epsilon == epsilon
    calibration = json.loads((saved / "calibration.json").read_text())
    assert calibration["epsilon"] == epsilon and set(calibration["rates"]) == {"ε*/2", "ε*", "2ε*"}
    editor = CacheEditor.load(saved)
    try:
        assert editor.edit_ids() == []  # calibration edits are not kept
        assert editor.evaluation_variants() == {
            "ε*/2": {"epsilon": epsilon / 2},
            "ε*": {"epsilon": epsilon},
            "2ε*": {"epsilon": epsilon * 2},
        }
    finally:
        editor.close()
