"""The scope classifier's embedder on ONNX Runtime: the same vectors (fp32), nearly the same
(int8), and an int8 memory is a space of its own."""

import numpy as np
import pytest
from tiny_serac import sharpen_embedding_scorer, tiny_config

from index import EncoderMismatchError
from serac import SERAC
from serac.serac.config import SERACConfig
from serac.serac.onnx_embedder import OnnxEmbedder
from serac.serac.scope_classifier import ScopeClassifier

TEXTS = ["What is the capital of France?", "Who wrote Hamlet?", "a", "Which river flows through Cairo, the city on the Nile?"]


@pytest.fixture(scope="module")
def classifier():
    return ScopeClassifier.from_backbone("tiny-bert").eval()


def test_onnx_gives_the_torch_embeddings_in_any_batch_order(classifier):
    exported = OnnxEmbedder(classifier.embedder, "onnx")
    expected = classifier.encode(TEXTS)
    np.testing.assert_allclose(exported.encode(TEXTS, batch_size=3), expected, atol=1e-5)
    np.testing.assert_allclose(exported.encode(TEXTS[::-1], batch_size=1), expected[::-1], atol=1e-5)


def test_int8_embeddings_stay_close_and_unit_norm(classifier):
    quantized = OnnxEmbedder(classifier.embedder, "onnx-int8").encode(TEXTS)
    expected = classifier.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(quantized, axis=1), 1.0, atol=1e-5)
    assert (quantized * expected).sum(1).min() > 0.95
    assert not np.allclose(quantized, expected, atol=1e-6)  # int8 weights really are used


def test_an_int8_editor_refuses_a_memory_built_with_torch_vectors(tmp_path):
    editor = SERAC.from_pretrained(tiny_config(), device="cpu", memory_path=tmp_path / "memory")
    editor.add_edit("Who wrote Hamlet?", "Jane Austen")
    assert "+int8" not in editor.classifier.fingerprint()
    editor.close()
    with pytest.raises(EncoderMismatchError):
        SERAC.from_pretrained(tiny_config(encoder_backend="onnx-int8"), device="cpu", memory_path=tmp_path / "memory")


def test_an_int8_editor_adds_and_routes_its_own_edits():
    editor = SERAC.from_pretrained(tiny_config(encoder_backend="onnx-int8", threshold=0.9), device="cpu")
    sharpen_embedding_scorer(editor)
    ids = editor.add_edits([(text, f"answer {i}") for i, text in enumerate(TEXTS)])
    assert [route.edit_id for route in editor.route(TEXTS)] == ids
    assert editor.classifier.fingerprint().endswith("+int8")
    editor.close()


def test_an_unknown_encoder_backend_is_refused():
    with pytest.raises(ValueError, match="encoder_backend must be one of"):
        SERACConfig(encoder_backend="tensorrt")
