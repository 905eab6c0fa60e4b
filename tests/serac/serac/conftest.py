import pytest
from tiny_serac import sharp_tiny_editor


@pytest.fixture
def editor(tmp_path):
    with sharp_tiny_editor(tmp_path / "memory") as editor:
        yield editor
