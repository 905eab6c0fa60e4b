"""Concurrent queries are batched; edits go through one writer and a query never sees half an edit."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from serac.core.editor import QueryResult
from serac.server import ServerSettings, create_app
from tests.in_memory_editor import InMemoryEditor
from tests.serac.server.conftest import AUTH, TOKEN, live_server


class SlowEchoEditor(InMemoryEditor):
    """Answers each prompt reversed, slowly, recording the size of every batch it is given. Its
    edit is written in two steps, as a weight editor writes several weights one after another."""

    name = "slow-echo"

    def __init__(self):
        super().__init__()
        self.batch_sizes = []
        self.first_half = self.second_half = 0

    def query_batch(self, prompts, max_new_tokens=None):
        self.batch_sizes.append(len(prompts))
        time.sleep(0.02)
        halves = f"{self.first_half}/{self.second_half}"
        return [QueryResult(f"{prompt[::-1]} {halves}") for prompt in prompts]

    def add_edits(self, edits):
        ids = super().add_edits(edits)
        self.first_half += 1
        time.sleep(0.01)  # a query running now would see one half edited
        self.second_half += 1
        return ids

    def score(self, prompts, targets):
        raise NotImplementedError

    def save(self, path):
        path.mkdir(exist_ok=True)
        (path / "edits.json").write_text(json.dumps(self.edits))


def serve(editor, folder, **settings):
    folder.mkdir(exist_ok=True)
    return live_server(create_app(editor, ServerSettings(editor_path=folder, token=TOKEN, **settings)))


def ask(url: str, prompt: str) -> str:
    response = httpx.post(f"{url}/v1/completions", json={"prompt": prompt}, headers=AUTH, timeout=30)
    response.raise_for_status()
    return response.json()["choices"][0]["text"]


def test_concurrent_queries_are_answered_in_batches(tmp_path):
    editor = SlowEchoEditor()
    with serve(editor, tmp_path / "echo", max_batch=4, batch_window_ms=20) as url:
        prompts = [f"question {i}" for i in range(24)]
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda prompt: ask(url, prompt), prompts))
        metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
    assert [answer.split()[0] + " " + answer.split()[1] for answer in answers] == [prompt[::-1] for prompt in prompts]
    assert sum(editor.batch_sizes) == 24 and max(editor.batch_sizes) == 4 and len(editor.batch_sizes) < 24
    assert "serac_query_batch_size_count 24.0" not in metrics and "serac_query_batch_size_sum 24.0" in metrics


def test_queries_never_see_a_half_applied_edit(tmp_path):
    editor = SlowEchoEditor()
    with serve(editor, tmp_path / "echo", max_batch=2, batch_window_ms=0) as url:
        stop = threading.Event()
        seen = []

        def keep_asking():
            while not stop.is_set():
                seen.append(ask(url, "q").split()[1])

        askers = [threading.Thread(target=keep_asking) for _ in range(4)]
        for asker in askers:
            asker.start()
        for i in range(15):
            response = httpx.post(f"{url}/v1/edits", json={"prompt": f"p{i}", "target": "t"}, headers=AUTH, timeout=30)
            assert response.status_code == 201
        stop.set()
        for asker in askers:
            asker.join()
    assert len(seen) > 15
    assert all(first == second for first, second in (halves.split("/") for halves in seen)), [h for h in seen if len(set(h.split("/"))) > 1]
    assert json.loads((tmp_path / "echo" / "edits.json").read_text()).keys() == editor.edits.keys()  # saved after each edit
