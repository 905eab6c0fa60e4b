"""The scale benchmark's copy of a trained editor takes the encoder backend and settings it is asked for."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "scale"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serac" / "serac"))

from scale_run import prepare  # noqa: E402
from tiny_serac import tiny_config  # noqa: E402

from serac import SERAC  # noqa: E402

pytest.importorskip("onnxruntime")


def test_a_copy_with_another_encoder_backend_starts_its_own_memory_and_takes_edits(tmp_path):
    trained = tmp_path / "trained"
    SERAC.from_pretrained(tiny_config(), device="cpu").save(trained)  # saved with an empty memory of the torch encoder
    folder = prepare(trained, tmp_path / "run", "onnx-int8", {})  # raised EncoderMismatchError before
    assert json.loads((folder / "editor.json").read_text())["config"]["encoder_backend"] == "onnx-int8"
    editor = SERAC.load(folder)
    try:
        editor.add_edits([("What is the capital of Freedonia?", "Fredville")])
        assert editor.memory.count() == 1 and editor.memory.encoder_name.endswith(editor.classifier.fingerprint())
    finally:
        editor.close()
    with pytest.raises(SystemExit, match="holds edits"):
        prepare(folder, tmp_path / "run2", "onnx-int8", {})


def test_a_copy_keeps_the_routing_settings_it_was_made_with_and_refuses_others(tmp_path):
    trained = tmp_path / "trained"
    SERAC.from_pretrained(tiny_config(), device="cpu").save(trained)
    folder = prepare(trained, tmp_path / "run", "torch", {"subject_scope": True})
    editor = SERAC.load(folder)
    try:
        assert editor.config.subject_scope is True
    finally:
        editor.close()
    assert prepare(trained, tmp_path / "run", "torch", {"subject_scope": True}) == folder  # resumed
    with pytest.raises(SystemExit, match="other settings than {'subject_scope': False}"):
        prepare(trained, tmp_path / "run", "torch", {"subject_scope": False})
