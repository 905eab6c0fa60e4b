import pytest
import torch

from serac.core.language_model import LanguageModel
from serac.core.models import load_language_model


@pytest.fixture(autouse=True)
def tiny_models_on_one_cpu_thread(monkeypatch):
    # Tiny models gain nothing from threads, and on a shared 2-core machine idle-spinning
    # OpenMP threads make them many times slower. Tests also never pick a GPU by chance.
    monkeypatch.setenv("SERAC_DEVICE", "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_lm():
    """A fresh tiny language model (editors write its weights) by name, given plain text as the
    tiny model configs say (the tiny tokenizer's chat template would otherwise be picked)."""

    def build(name: str) -> LanguageModel:
        return load_language_model(name, "cpu", "plain")

    return build
