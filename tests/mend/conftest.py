import pytest
import torch

from serac.core.language_model import LanguageModel
from serac.core.models import load_model, load_tokenizer


@pytest.fixture(autouse=True)
def one_cpu_thread(monkeypatch):
    # Tiny models gain nothing from threads; on a shared CPU, spinning threads slow them down.
    monkeypatch.setenv("SERAC_DEVICE", "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_lm():
    """A fresh tiny language model (editors write its weights) by name."""

    def build(name: str) -> LanguageModel:
        return LanguageModel(load_model(name), load_tokenizer(name), device="cpu")

    return build
