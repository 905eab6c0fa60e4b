"""The cross-encoder on ONNX Runtime: the torch logits, so the same routes; exports are cached
by weights and a damaged cache file is exported again; idle threads do not spin."""

import pytest
import torch
from tiny_serac import tiny_config

from serac import SERAC
from serac.serac import onnx_export
from serac.serac.onnx_cross_encoder import OnnxCrossEncoder
from serac.serac.scope_classifier import ScopeClassifier

EDITS = ["Who wrote Hamlet?", "a", "What is the capital of France?"]
QUERIES = ["Hamlet was written by whom?", "Which river flows through Cairo, the city on the Nile?", "France's capital?"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.fixture(scope="module")
def classifier():
    return ScopeClassifier.from_backbone("tiny-bert").eval()


def test_onnx_gives_the_torch_logits_for_any_batch(classifier, cache):
    scorer = OnnxCrossEncoder(classifier.cross_encoder)
    with torch.no_grad():
        expected = classifier.cross_logits(EDITS, QUERIES)
    torch.testing.assert_close(scorer.logits(EDITS, QUERIES), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(scorer.logits(EDITS[:1], QUERIES[:1]), expected[:1], atol=1e-5, rtol=0)


def test_an_export_is_cached_by_weights_and_a_damaged_file_is_exported_again(classifier, cache, monkeypatch):
    exports = []
    export = onnx_export._export
    monkeypatch.setattr(onnx_export, "_export", lambda *args: (exports.append(args[-1]), export(*args))[1])
    OnnxCrossEncoder(classifier.cross_encoder)
    OnnxCrossEncoder(classifier.cross_encoder)
    assert len(exports) == 1 and len(list(cache.glob("*.onnx"))) == 1
    next(cache.glob("*.onnx")).write_bytes(b"not a graph")
    scorer = OnnxCrossEncoder(classifier.cross_encoder)
    assert len(exports) == 2 and scorer.logits(EDITS, QUERIES).shape == (3,)
    other = ScopeClassifier.from_backbone("tiny-bert").eval()
    with torch.no_grad():
        next(other.cross_encoder.parameters()).add_(1.0)  # other weights: another file
    OnnxCrossEncoder(other.cross_encoder)
    assert len(exports) == 3 and len(list(cache.glob("*.onnx"))) == 2


def test_idle_onnx_threads_do_not_spin(classifier, cache):
    # Spinning pool threads took the cores from torch work that followed in the same process.
    scorer = OnnxCrossEncoder(classifier.cross_encoder)
    assert scorer.head.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_an_editor_on_onnx_routes_as_with_the_torch_cross_encoder(cache):
    editor = SERAC.from_pretrained(tiny_config(rerank=True, cross_encoder_backend="onnx"), device="cpu")
    try:
        assert isinstance(editor.classifier.fast_cross_encoder, OnnxCrossEncoder)
        editor.add_edits([(edit, f"answer {i}") for i, edit in enumerate(EDITS)])
        onnx_routes = editor.route(QUERIES + EDITS)
        editor.classifier.use_fast_cross_encoder(None)
        torch_routes = editor.route(QUERIES + EDITS)
    finally:
        editor.close()
    assert [route.edit_id for route in onnx_routes] == [route.edit_id for route in torch_routes]
    assert [route.probability for route in onnx_routes] == pytest.approx([route.probability for route in torch_routes], abs=1e-5)
