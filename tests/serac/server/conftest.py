"""Saved tiny editors, apps over them, and real servers on 127.0.0.1 for the server tests."""

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from serac import SERAC
from serac.core.memory_editor import MemoryEditor
from serac.core.registry import editor_class
from serac.core.saving import saved_editor_name
from serac.server import ServerSettings, create_app
from tests.serac.serac.tiny_serac import sharpen_embedding_scorer, tiny_config

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def saved_tiny_serac(tmp_path_factory) -> Path:
    """A tiny SERAC editor that routes only (near-)identical prompts, saved once per run."""
    folder = tmp_path_factory.mktemp("saved") / "tiny-serac"
    editor = SERAC.from_pretrained(tiny_config(max_new_tokens=4), device="cpu")
    sharpen_embedding_scorer(editor)
    editor.save(folder)
    editor.close()
    return folder


@pytest.fixture
def serac_folder(saved_tiny_serac, tmp_path) -> Path:
    """A fresh copy of the saved editor for one test (serving it adds edits to it)."""
    folder = tmp_path / "editor"
    shutil.copytree(saved_tiny_serac, folder)
    return folder


def load_editor(folder: Path):
    return editor_class(saved_editor_name(folder)).load(folder, device="cpu")


@contextmanager
def served(folder: Path, **settings):
    """A TestClient over an app serving the editor saved in `folder`; the editor is closed after."""
    editor = load_editor(folder)
    try:
        app = create_app(editor, ServerSettings(editor_path=folder, token=TOKEN, **settings))
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        if isinstance(editor, MemoryEditor):
            editor.close()


@pytest.fixture
def client(serac_folder):
    with served(serac_folder) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(app):
    """`app` served by uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def live_editor_server(folder: Path, **settings):
    """A real server for the editor saved in `folder`; yields (base URL, editor)."""
    editor = load_editor(folder)
    try:
        with live_server(create_app(editor, ServerSettings(editor_path=folder, token=TOKEN, **settings))) as url:
            yield url, editor
    finally:
        if isinstance(editor, MemoryEditor):
            editor.close()
