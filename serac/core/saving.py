"""The on-disk form of a saved editor: `editor.json` (name + config) beside safetensors files."""

import dataclasses
import json
import os
from pathlib import Path

FORMAT_VERSION = 1
CONFIG_FILE = "editor.json"


class NotASavedEditorError(ValueError):
    """The path does not hold an editor written by `Editor.save`."""


def write_atomically(file: Path, write) -> None:
    """Call `write(staging_path)`, then move the result over `file`: a crash never leaves half a file."""
    staging = file.with_name(file.name + ".tmp")
    write(staging)
    os.replace(staging, file)


def write_editor_config(path: str | Path, editor_name: str, config) -> Path:
    """Create the folder and write its config atomically; returns the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    body = {"editor": editor_name, "format_version": FORMAT_VERSION, "config": dataclasses.asdict(config)}
    write_atomically(folder / CONFIG_FILE, lambda staging: staging.write_text(json.dumps(body, indent=2)))
    return folder


def _read_body(path: str | Path) -> dict:
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise NotASavedEditorError(f"{path} is not a saved editor: it has no {CONFIG_FILE}")
    try:
        body = json.loads(file.read_text())
        if not isinstance(body.get("editor"), str) or not isinstance(body.get("config"), dict):
            raise ValueError("missing 'editor' or 'config'")
    except (json.JSONDecodeError, ValueError, AttributeError) as error:
        raise NotASavedEditorError(f"{file} is corrupt: {error}") from None
    return body


def saved_editor_name(path: str | Path) -> str:
    return _read_body(path)["editor"]


def read_editor_config(path: str | Path, expected_editor: str, config_class: type):
    """The saved config as a `config_class` instance; a clear error when `path` is not a saved editor of that kind."""
    body = _read_body(path)
    if body["editor"] != expected_editor:
        raise NotASavedEditorError(f"{path} holds a saved {body['editor']!r} editor, not {expected_editor!r}")
    # Settings renamed since the editor was saved (`config_class.renamed_fields`: old -> new name).
    renamed = getattr(config_class, "renamed_fields", {})
    settings = {renamed.get(key, key): value for key, value in body["config"].items()}
    try:
        return config_class(**settings)
    except TypeError as error:
        raise NotASavedEditorError(f"{path}: the saved config does not fit {config_class.__name__}: {error}") from None
