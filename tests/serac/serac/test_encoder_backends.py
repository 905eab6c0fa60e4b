"""Encoder backends: bf16 autocast gives the float32 vectors to within bf16 rounding, shares
their space, and "auto" picks it only where the device multiplies bf16 natively."""

import json

import numpy as np
import pytest
import torch
from tiny_serac import sharpen_embedding_scorer, tiny_config

from serac import SERAC
from serac.serac import encoder_backends
from serac.serac.config import SERACConfig
from serac.serac.encoder_backends import (
    BFloat16Embedder,
    inference_cross_encoder,
    inference_encoder,
    resolve_cross_encoder_backend,
    resolve_encoder_backend,
)
from serac.serac.scope_classifier import ScopeClassifier

TEXTS = ["What is the capital of France?", "Who wrote Hamlet?", "a", "Which river flows through Cairo, the city on the Nile?"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def classifier():
    return ScopeClassifier.from_backbone("tiny-bert").eval()


def test_bf16_vectors_are_the_float32_ones_to_within_rounding(classifier):
    expected = classifier.encode(TEXTS)
    bf16 = BFloat16Embedder(classifier.embedder).encode(TEXTS)
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert (bf16 * expected).sum(1).min() > 0.999
    assert not np.allclose(bf16, expected, atol=1e-7)  # bf16 products really are used


def test_bf16_vectors_do_not_depend_on_their_batch_mates(classifier):
    bf16 = BFloat16Embedder(classifier.embedder)
    together = bf16.encode(TEXTS)
    alone = np.concatenate([bf16.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(alone, together, atol=2e-3)


def test_auto_is_bf16_where_the_device_has_it_else_onnx_on_a_cpu_that_has_it_else_torch(monkeypatch):
    monkeypatch.setattr(encoder_backends, "native_bfloat16", lambda device: True)
    assert resolve_encoder_backend("auto", CPU) == "torch-bf16"
    monkeypatch.setattr(encoder_backends, "native_bfloat16", lambda device: False)
    monkeypatch.setattr(encoder_backends, "onnx_available", lambda: True)
    assert resolve_encoder_backend("auto", CPU) == "onnx"
    assert resolve_encoder_backend("auto", torch.device("cuda")) == "torch"
    monkeypatch.setattr(encoder_backends, "onnx_available", lambda: False)
    assert resolve_encoder_backend("auto", CPU) == "torch"
    assert resolve_encoder_backend("onnx", CPU) == "onnx"  # a concrete choice stays


def test_auto_scores_pairs_on_onnx_on_a_cpu_that_has_it(monkeypatch):
    monkeypatch.setattr(encoder_backends, "onnx_available", lambda: True)
    assert resolve_cross_encoder_backend("auto", CPU) == "onnx"
    assert resolve_cross_encoder_backend("auto", torch.device("cuda")) == "torch"
    monkeypatch.setattr(encoder_backends, "onnx_available", lambda: False)
    assert resolve_cross_encoder_backend("auto", CPU) == "torch"


def test_the_float32_backend_has_no_extra_encoder(classifier, monkeypatch):
    monkeypatch.setattr(encoder_backends, "native_bfloat16", lambda device: False)
    monkeypatch.setattr(encoder_backends, "onnx_available", lambda: False)
    assert inference_encoder(classifier.embedder, "auto") is None
    assert inference_cross_encoder(classifier.cross_encoder, "auto") is None
    assert isinstance(inference_encoder(classifier.embedder, "torch-bf16"), BFloat16Embedder)


def test_new_editors_default_to_auto_and_old_configs_keep_theirs():
    assert SERACConfig().encoder_backend == "auto"
    assert SERACConfig(encoder_backend="torch").encoder_backend == "torch"


def test_a_memory_built_in_float32_is_searched_with_bf16_and_back(tmp_path):
    memory = tmp_path / "memory"
    editor = SERAC.from_pretrained(tiny_config(encoder_backend="torch", threshold=0.9), device="cpu", memory_path=memory)
    ids = editor.add_edits([(text, f"answer {i}") for i, text in enumerate(TEXTS)])
    editor.close()
    editor = SERAC.from_pretrained(tiny_config(encoder_backend="torch-bf16", threshold=0.9), device="cpu", memory_path=memory)
    sharpen_embedding_scorer(editor)
    assert [route.edit_id for route in editor.route(TEXTS)] == ids
    more = editor.add_edits([("Who painted the Mona Lisa?", "Frida Kahlo")])
    editor.close()
    editor = SERAC.from_pretrained(tiny_config(encoder_backend="torch", threshold=0.9), device="cpu", memory_path=memory)
    sharpen_embedding_scorer(editor)
    assert [route.edit_id for route in editor.route(["Who painted the Mona Lisa?"])] == more
    editor.close()


def test_an_editor_saved_before_the_setting_keeps_float32(tmp_path):
    editor = SERAC.from_pretrained(tiny_config(encoder_backend="torch"), device="cpu")
    editor.save(tmp_path / "saved")
    editor.close()
    body = json.loads((tmp_path / "saved" / "editor.json").read_text())
    del body["config"]["encoder_backend"]  # as editors saved before 2026-12-03 wrote it
    (tmp_path / "saved" / "editor.json").write_text(json.dumps(body))
    loaded = SERAC.load(tmp_path / "saved", device="cpu")
    assert loaded.config.encoder_backend == "torch" and loaded.classifier.fast_encoder is None
    loaded.close()


def test_the_bf16_copy_gives_what_autocast_over_the_float32_weights_gives(classifier):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = classifier.embedder.encode(TEXTS, convert_to_tensor=True, show_progress_bar=False).float().numpy()
    np.testing.assert_allclose(BFloat16Embedder(classifier.embedder).encode(TEXTS), expected, atol=1e-6)
    assert next(classifier.embedder.parameters()).dtype == torch.float32  # the editor's own embedder is untouched
