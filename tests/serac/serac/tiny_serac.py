"""A SERAC editor on tiny random models, for tests."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from serac import SERAC
from serac.serac.config import SERACConfig


def tiny_config(**changes) -> SERACConfig:
    # torch heads: the ONNX ones (what "auto" picks on a CPU) are tested on their own.
    fields = dict(
        model_name="tiny-llama", counterfactual_model="tiny-llama", classifier_backbone="tiny-bert",
        rerank=False, max_new_tokens=3, threshold=0.5, prompt_format="plain",
        encoder_backend="torch", cross_encoder_backend="torch",
    )
    return SERACConfig(**{**fields, **changes})


def sharpen_embedding_scorer(editor: SERAC) -> None:
    """Make the untrained tiny embedder route only (near-)identical texts: p = σ(1000·cos − 999)."""
    with torch.no_grad():
        editor.classifier.embed_scale.fill_(1000.0)
        editor.classifier.embed_bias.fill_(-999.0)


@contextmanager
def sharp_tiny_editor(memory_path: Path, **changes) -> Iterator[SERAC]:
    """A tiny editor with its memory at `memory_path` that routes only (near-)identical texts, closed after use."""
    editor = SERAC.from_pretrained(tiny_config(**changes), device="cpu", memory_path=memory_path)
    sharpen_embedding_scorer(editor)
    try:
        yield editor
    finally:
        editor.close()
