import pytest

from serac.core.language_model import LanguageModel
from serac.core.models import load_model, load_tokenizer


@pytest.fixture
def tiny_lm():
    """A fresh tiny language model (editors write its weights) by name."""

    def build(name: str) -> LanguageModel:
        return LanguageModel(load_model(name), load_tokenizer(name), device="cpu")

    return build
