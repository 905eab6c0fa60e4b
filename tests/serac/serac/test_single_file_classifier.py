"""Editors saved before the scope classifier's heads were sentence-transformers models still
load, and score and route exactly as they did (the fixture was written by that code, with
its expected scores, at commit 4839310)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from serac import SERAC
from serac.core.saving import NotASavedEditorError
from serac.serac.editor import CLASSIFIER_FOLDER
from serac.serac.single_file_classifier import SINGLE_FILE

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "serac_editor_before_sentence_transformers"


@pytest.fixture
def old_editor_folder(tmp_path) -> Path:
    folder = tmp_path / "old-editor"
    shutil.copytree(FIXTURE, folder)
    return folder


def test_an_editor_saved_with_one_classifier_file_scores_and_routes_as_before(old_editor_folder):
    expected = json.loads((old_editor_folder / "expected_scores.json").read_text())
    editor = SERAC.load(old_editor_folder, device="cpu")
    try:
        assert editor.edit_ids() == expected["edit_ids"]
        assert editor.classifier.fingerprint() == expected["fingerprint"]  # its memory opened, nothing re-encoded
        with torch.no_grad():
            embeddings = editor.classifier.embed(expected["texts"]).numpy()
            edits, queries = zip(*expected["cross_pairs"])
            cross = editor.classifier.cross_logits(list(edits), list(queries)).numpy()
        np.testing.assert_allclose(embeddings, expected["embeddings"], atol=1e-5)
        np.testing.assert_allclose(editor.classifier.encode(expected["texts"]), expected["embeddings"], atol=1e-5)
        np.testing.assert_allclose(cross, expected["cross_logits"], atol=1e-4)
        routes = editor.route(expected["texts"])
        assert [route.edit_id for route in routes] == [route[0] for route in expected["routes"]]
        # Routed as then, except that an edit's own prompt is now always in its scope.
        assert [route.in_scope for route in routes] == [
            old[2] or route.prompt == text for route, old, text in zip(routes, expected["routes"], expected["texts"])
        ]
        np.testing.assert_allclose([route.probability for route in routes], [r[1] for r in expected["routes"]], atol=1e-5)
    finally:
        editor.close()


def test_an_old_editor_saved_again_is_in_the_new_format_and_keeps_its_scores(old_editor_folder, tmp_path):
    expected = json.loads((old_editor_folder / "expected_scores.json").read_text())
    editor = SERAC.load(old_editor_folder, device="cpu")
    editor.save(tmp_path / "resaved")
    editor.close()
    assert (tmp_path / "resaved" / CLASSIFIER_FOLDER / "embedder" / "modules.json").is_file()
    assert not (tmp_path / "resaved" / SINGLE_FILE).exists()
    again = SERAC.load(tmp_path / "resaved", device="cpu")
    try:
        assert again.classifier.fingerprint() == expected["fingerprint"]
        with torch.no_grad():
            edits, queries = zip(*expected["cross_pairs"])
            cross = again.classifier.cross_logits(list(edits), list(queries)).numpy()
        np.testing.assert_allclose(cross, expected["cross_logits"], atol=1e-4)
    finally:
        again.close()


def test_a_single_classifier_file_that_does_not_fit_the_backbone_is_a_clear_error(old_editor_folder):
    weights = load_file(old_editor_folder / SINGLE_FILE)
    del weights["cross_head.weight"]
    save_file(weights, old_editor_folder / SINGLE_FILE)
    with pytest.raises(NotASavedEditorError, match="cross_head weights do not fit"):
        SERAC.load(old_editor_folder, device="cpu")


def test_a_classifier_file_of_another_layout_is_named_in_a_short_message(old_editor_folder):
    """A file whose every embedder weight is misnamed (here: today's sentence-transformers names)
    used to list each of the hundred missing and unexpected names."""
    weights = load_file(old_editor_folder / SINGLE_FILE)
    renamed = {name.replace("embedder.", "embedder.0.auto_model.", 1): tensor for name, tensor in weights.items()}
    save_file(renamed, old_editor_folder / SINGLE_FILE)
    with pytest.raises(NotASavedEditorError, match="embedder weights do not fit") as error:
        SERAC.load(old_editor_folder, device="cpu")
    assert len(str(error.value)) < 600 and "missing, e.g." in str(error.value)
