"""The public API under a crash and under threads."""

import signal
import subprocess
import sys
import threading
from pathlib import Path

from tiny_serac import sharpen_embedding_scorer

from serac import SERAC

HERE = Path(__file__).parent
ADD_EDITS_FOREVER = """
import sys
sys.path.insert(0, sys.argv[2])
from serac import SERAC
from tiny_serac import tiny_config

editor = SERAC.from_pretrained(tiny_config(), device="cpu", memory_path=sys.argv[1])
batch = 0
while True:
    edits = [(f"question {batch}-{i}?", f"answer {batch}-{i}") for i in range(20)]
    for edit_id, (prompt, _) in zip(editor.add_edits(edits), edits):
        print(edit_id, prompt, flush=True)
    batch += 1
"""


def test_a_kill_during_add_edits_loses_no_edit_whose_id_was_returned(tmp_path):
    memory = tmp_path / "memory"
    adder = subprocess.Popen([sys.executable, "-c", ADD_EDITS_FOREVER, str(memory), str(HERE)], stdout=subprocess.PIPE, text=True)
    printed = [adder.stdout.readline() for _ in range(100)]
    adder.send_signal(signal.SIGKILL)
    printed += adder.stdout.read().splitlines(keepends=True)  # printed before the kill, still in the pipe
    adder.wait()
    returned = dict(line.rstrip("\n").split(" ", 1) for line in printed if line.endswith("\n"))
    assert len(returned) >= 100

    from tiny_serac import tiny_config

    editor = SERAC.from_pretrained(tiny_config(), device="cpu", memory_path=memory)
    try:
        stored = {str(edit.id): edit.prompt for edit in editor.memory.list()}
        assert {edit_id: stored.get(edit_id) for edit_id in returned} == returned
        # the index was rebuilt or reloaded: every returned edit is still found by its prompt
        sharpen_embedding_scorer(editor)
        some_id, some_prompt = next(iter(returned.items()))
        assert str(editor.query(some_prompt).edit_id) == some_id
    finally:
        editor.close()


def test_concurrent_adds_and_queries_from_several_threads(editor):
    errors = []

    def add(worker: int) -> None:
        try:
            for i in range(15):
                editor.add_edit(f"worker {worker} question {i}?", f"answer {i}")
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    def query() -> None:
        try:
            for _ in range(10):
                editor.query_batch(["worker 0 question 0?", "unrelated question?"], max_new_tokens=1)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=add, args=(w,)) for w in range(3)] + [threading.Thread(target=query) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(editor.edit_ids()) == 45
    assert editor.query("worker 2 question 14?").routed
