"""Queries, scores and adds from several threads give exactly what one thread gives: no call
changes state another call depends on (the tokenizer's padding side used to be flipped)."""

import threading

import numpy as np

PROMPTS = [f"What is the capital of country {i}?" for i in range(12)]
OTHERS = [f"Who wrote book number {i}?" for i in range(12)]


def _routes(editor, prompts):
    return [(route.edit_id, route.in_scope, round(route.probability, 5)) for route in editor.route(prompts)]


def test_threads_route_and_embed_exactly_as_one_thread(editor):
    editor.add_edits([(prompt, f"city {i}") for i, prompt in enumerate(PROMPTS)])
    expected = _routes(editor, PROMPTS + OTHERS)
    errors, seen = [], []

    def work(worker: int) -> None:
        try:
            for step in range(25):
                if step % 5 == 0:
                    editor.add_edit(f"Thread {worker} asks question {step}?", f"answer {step}")
                elif step % 5 == 1:
                    editor.query_batch(PROMPTS[:3] + OTHERS[:3], max_new_tokens=2)
                elif step % 5 == 2:
                    editor.score(OTHERS[:4], ["Paris", "Nile", "French", "1945"])
                else:
                    seen.append(_routes(editor, PROMPTS + OTHERS))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(routes == expected for routes in seen)
    assert _routes(editor, PROMPTS + OTHERS) == expected
    # every edit added from a thread was stored with the embedding one thread computes
    edits = {edit.id: edit.prompt for edit in editor.memory.list()}
    for ids, vectors in editor.memory._store.iter_vectors():
        np.testing.assert_allclose(vectors, editor.router.embed([edits[i] for i in ids.tolist()]), atol=1e-5)

