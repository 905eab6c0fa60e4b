"""The scope classifier's heads are sentence-transformers models on any backbone folder."""

import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from serac.core.models import model_folder
from serac.core.tiny_models import build_tiny_tokenizer
from serac.serac.scope_classifier import ScopeClassifier

TEXTS = ["Who wrote Hamlet?", "What is the capital of France?"]


def test_a_saved_sentence_transformer_folder_is_a_backbone(tmp_path):
    first = ScopeClassifier.from_backbone("tiny-bert").eval()
    first.embedder.save(str(tmp_path / "bi-encoder"))
    again = ScopeClassifier.from_backbone(str(tmp_path / "bi-encoder")).eval()
    np.testing.assert_allclose(again.encode(TEXTS), first.encode(TEXTS), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(again.encode(TEXTS), axis=1), 1.0, atol=1e-5)


def test_a_trained_cross_encoder_backbone_keeps_its_classification_head(tmp_path):
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = None
    config = BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=len(tokenizer), num_labels=1)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(tmp_path / "cross-encoder")
    tokenizer.save_pretrained(tmp_path / "cross-encoder")
    classifier = ScopeClassifier.from_backbone(str(tmp_path / "cross-encoder")).eval()
    with torch.no_grad():
        logits = classifier.cross_logits(TEXTS, TEXTS[::-1])
        expected = classifier.cross_encoder.predict(list(zip(TEXTS, TEXTS[::-1])), activation_fn=torch.nn.Identity(), convert_to_tensor=True)
    assert classifier.cross_encoder.model.__class__.__name__ == "BertForSequenceClassification"
    torch.testing.assert_close(logits, expected.float(), atol=1e-5, rtol=0)
    assert classifier.encode(TEXTS).shape == (2, 32)


def test_a_saved_classifier_loads_with_the_same_scores(tmp_path):
    classifier = ScopeClassifier.from_backbone("tiny-bert").eval()
    with torch.no_grad():
        classifier.embed_scale.fill_(3.0)
    classifier.save(tmp_path / "classifier")
    loaded = ScopeClassifier.load(tmp_path / "classifier", "tiny-bert").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.cross_logits(TEXTS, TEXTS), classifier.cross_logits(TEXTS, TEXTS))
    assert loaded.fingerprint() == classifier.fingerprint() and float(loaded.embed_scale.detach()) == 3.0


def test_a_tiny_encoder_folder_has_no_chat_template_and_a_decoder_folder_keeps_it():
    with model_folder("tiny-bert") as folder:
        assert AutoTokenizer.from_pretrained(folder).chat_template is None
    with model_folder("tiny-llama") as folder:
        assert AutoTokenizer.from_pretrained(folder).chat_template
