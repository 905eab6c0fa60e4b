import pytest
from tiny_serac import sharpen_embedding_scorer, tiny_config

from serac import SERAC


@pytest.fixture
def editor(tmp_path):
    editor = SERAC.from_pretrained(tiny_config(), device="cpu", memory_path=tmp_path / "memory")
    sharpen_embedding_scorer(editor)
    yield editor
    editor.close()
