"""save() never destroys edits and is atomic; a damaged saved folder is our error naming the file."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_serac import tiny_config

from index import MemoryInUseError, NotAnEditMemoryError
from serac import SERAC
from serac.core.saving import NotASavedEditorError, SaveTargetError

HERE = Path(__file__).parent


@pytest.fixture
def saved(editor, tmp_path) -> Path:
    editor.add_edits([("Who wrote Hamlet?", "Marlowe"), ("What is the capital of France?", "Lyon")])
    editor.save(tmp_path / "saved")
    return tmp_path / "saved"


def test_saving_over_a_folder_another_editor_has_open_is_refused(editor, saved):
    loaded = SERAC.load(saved, device="cpu")
    try:
        loaded.add_edit("Which river flows through Cairo?", "Thames")
        with pytest.raises(MemoryInUseError):
            editor.save(saved)
        assert len(loaded.edit_ids()) == 3
    finally:
        loaded.close()
    reloaded = SERAC.load(saved, device="cpu")
    assert len(reloaded.edit_ids()) == 3
    reloaded.close()


def test_an_unrelated_folder_with_a_memory_subfolder_is_never_overwritten(editor, tmp_path):
    unrelated = tmp_path / "project"
    (unrelated / "memory").mkdir(parents=True)
    (unrelated / "memory" / "notes.txt").write_text("keep me")
    with pytest.raises(SaveTargetError, match="not empty and not a saved editor"):
        editor.save(unrelated)
    assert [p.name for p in (unrelated / "memory").iterdir()] == ["notes.txt"]
    assert (unrelated / "memory" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory", "project"]


@pytest.mark.parametrize("path", ["", "   "])
def test_an_empty_path_is_refused(editor, path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "memory2").mkdir()
    with pytest.raises(SaveTargetError, match="needs the path of a folder"):
        editor.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory", "memory2"]


def test_a_file_or_a_link_is_refused(editor, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SaveTargetError, match="is a file"):
        editor.save(tmp_path / "file")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SaveTargetError, match="symbolic link"):
        editor.save(tmp_path / "link")


def test_saving_again_replaces_the_folder_whole_and_leaves_no_staging(editor, saved):
    editor.add_edit("Who is the president of the United States?", "Ada Lovelace")
    editor.save(saved)
    assert [p.name for p in saved.parent.iterdir() if p.name.startswith(".")] == []
    reloaded = SERAC.load(saved, device="cpu")
    assert len(reloaded.edit_ids()) == 3
    reloaded.close()


def test_a_loaded_editor_saves_in_place_without_losing_edits(saved):
    loaded = SERAC.load(saved, device="cpu")
    loaded.add_edit("Which river flows through Cairo?", "Thames")
    loaded.configure(top_k=3)
    loaded.save(saved)
    loaded.add_edit("Who wrote Hamlet? (again)", "Kyd")
    loaded.close()
    reloaded = SERAC.load(saved, device="cpu")
    assert len(reloaded.edit_ids()) == 4 and reloaded.config.top_k == 3
    reloaded.close()


def test_a_planted_link_at_the_temporary_names_is_never_followed(editor, saved, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (saved / "editor.json.tmp").symlink_to(victim)
    (saved / "memory" / "vectors.json.partial").symlink_to(victim)
    editor.save(saved)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda folder: (folder / "counterfactual" / "config.json").write_bytes(b""), "config.json"),
        (lambda folder: (folder / "counterfactual" / "tokenizer.json").write_bytes(b'{"trunc'), "tokenizer.json"),
        (lambda folder: _truncate(folder / "scope_classifier" / "embedder" / "model.safetensors"), "embedder/model.safetensors"),
        (lambda folder: _truncate(folder / "scope_classifier" / "cross_encoder" / "model.safetensors"), "cross_encoder/model.safetensors"),
        (lambda folder: _truncate(folder / "scope_classifier" / "similarity.safetensors"), "similarity.safetensors"),
        (lambda folder: (folder / "scope_classifier" / "cross_encoder" / "modules.json").write_bytes(b"[{"), "modules.json"),
        (lambda folder: _truncate(folder / "counterfactual" / "model.safetensors"), "model.safetensors"),
        (lambda folder: os.system(f"rm -r '{folder / 'counterfactual'}'"), "counterfactual/config.json is missing"),
        (lambda folder: os.system(f"rm -r '{folder / 'memory'}'"), "memory is missing"),
        (lambda folder: (folder / "scope_classifier" / "similarity.safetensors").unlink(), "similarity.safetensors is missing"),
        (lambda folder: os.system(f"rm -r '{folder / 'scope_classifier' / 'embedder'}'"), "embedder/modules.json is missing"),
        (lambda folder: (folder / "memory" / "edits.sqlite").unlink(), r"edits\.sqlite is missing, but .*vectors\.faiss holds 2"),
    ],
)
def test_a_damaged_saved_folder_is_our_error_naming_the_file(saved, damage, named):
    damage(saved)
    with pytest.raises((NotASavedEditorError, NotAnEditMemoryError), match=named):
        SERAC.load(saved, device="cpu")


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


SAVE_FOREVER = """
import sys
sys.path.insert(0, sys.argv[2])
from serac import SERAC
from tiny_serac import tiny_config

editor = SERAC.from_pretrained(tiny_config(), device="cpu")
round = 0
while True:
    ids = editor.add_edits([(f"question {round}-{i}?", f"answer {i}") for i in range(5)])
    editor.save(sys.argv[1])
    print(" ".join(ids), flush=True)
    round += 1
"""


@pytest.mark.parametrize("trial", range(1))  # 20 trials with the real models: benchmarks/reliability
def test_a_kill_during_save_leaves_a_loadable_folder_with_every_saved_edit(tmp_path, trial):
    target = tmp_path / "saved"
    saver = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(target), str(HERE)], stdout=subprocess.PIPE, text=True)
    saved_ids = set(saver.stdout.readline().split())  # the first save is complete
    time.sleep(random.Random(trial).uniform(0.0, 1.5))
    saver.send_signal(signal.SIGKILL)
    for line in saver.stdout.read().splitlines(keepends=True):
        if line.endswith("\n"):
            saved_ids |= set(line.split())
    saver.wait()
    loaded = SERAC.load(target, device="cpu")
    try:
        assert saved_ids <= set(loaded.edit_ids())
    finally:
        loaded.close()
    # the next save clears what the killed one left beside the folder
    SERAC.from_pretrained(tiny_config(), device="cpu").save(tmp_path / "other")
    loaded = SERAC.load(target, device="cpu")
    loaded.save(target)
    loaded.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
