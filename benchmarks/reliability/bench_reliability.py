"""Reliability of SERAC with the real models (smollm2-135m, all-minilm-l6-v2).

    .venv/bin/python benchmarks/reliability/bench_reliability.py --workdir /tmp/serac-reliability \
        --kill-trials 20 --threads 4 --operations 2500

kill-add   `--kill-trials` times: a process loads the editor folder and adds batches of edits,
           printing each id once add_edits returned; it is killed (SIGKILL) at a random moment.
           Then the folder must load, holding every printed edit.
kill-save  `--kill-trials` times: a process loads an editor, adds edits and saves it into
           another folder again and again, printing the ids each completed save held; it is
           killed at a random moment. Then that folder must load, holding every printed edit.
threads    `--threads` threads each run `--operations` mixed operations (route 40%, add 25%,
           score 20%, query with generation 10%, embedding check 5%) on one editor. Every
           route, score and answer must be identical to what one thread computes for the same
           input, and every edit added must be stored with the embedding one thread computes.

The scope classifier routes on the embedding score alone, sharpened (p = σ(1000·cos − 999))
so that only (near-)identical prompts are in scope: routing then does not depend on which
edits other threads add meanwhile, so any difference is a concurrency defect.
"""

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from serac import SERAC
from serac.serac.config import SERACConfig

CHILD_ADD = """
import sys
from serac import SERAC
editor = SERAC.load(sys.argv[1], device="cpu")
print("ready", flush=True)
batch = 0
while True:
    edits = [(f"trial {sys.argv[2]} question {batch}-{i}?", f"answer {batch}-{i}") for i in range(5)]
    for edit_id, (prompt, _) in zip(editor.add_edits(edits), edits):
        print(edit_id, prompt, flush=True)
    batch += 1
"""

CHILD_SAVE = """
import sys
from serac import SERAC
editor = SERAC.load(sys.argv[1], device="cpu")
print("ready", flush=True)
round = 0
while True:
    editor.add_edits([(f"save trial {sys.argv[3]} round {round} question {i}?", f"answer {i}") for i in range(5)])
    editor.save(sys.argv[2])
    print(" ".join(editor.edit_ids()), flush=True)
    round += 1
"""


def build_editor(folder: Path) -> None:
    editor = SERAC.from_pretrained(SERACConfig(rerank=False, max_new_tokens=4), device="cpu")
    with torch.no_grad():
        editor.classifier.embed_scale.fill_(1000.0)
        editor.classifier.embed_bias.fill_(-999.0)
    editor.save(folder)
    editor.close()


def _run_until_killed(script: str, args: list[str], rng: random.Random, low: float, high: float) -> list[str]:
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready", "the child did not load the editor"
    time.sleep(rng.uniform(low, high))
    child.send_signal(signal.SIGKILL)
    lines = child.stdout.read().splitlines(keepends=True)
    child.wait()
    return [line.rstrip("\n") for line in lines if line.endswith("\n")]


def _stored_prompts(folder: Path, label: str) -> dict[str, str] | None:
    """{edit id: prompt} of the editor saved in `folder`; None (reported) if it does not load."""
    try:
        editor = SERAC.load(folder, device="cpu")
    except Exception as error:  # noqa: BLE001 - counted by the caller
        print(f"{label}: unloadable: {error}", flush=True)
        return None
    try:
        return {str(edit.id): edit.prompt for edit in editor.memory.list()}
    finally:
        editor.close()


def kill_during_add(folder: Path, trials: int, rng: random.Random) -> dict:
    acknowledged: dict[str, str] = {}
    lost = unloadable = 0
    for trial in range(trials):
        for line in _run_until_killed(CHILD_ADD, [str(folder), str(trial)], rng, 0.5, 6.0):
            edit_id, prompt = line.split(" ", 1)
            acknowledged[edit_id] = prompt
        stored = _stored_prompts(folder, f"add trial {trial}")
        if stored is None:
            unloadable += 1
            continue
        lost_now = sum(stored.get(edit_id) != prompt for edit_id, prompt in acknowledged.items())
        lost += lost_now
        print(f"add trial {trial}: {len(acknowledged)} acknowledged, {lost_now} lost", flush=True)
    return {"trials": trials, "acknowledged_edits": len(acknowledged), "lost": lost, "unloadable_folders": unloadable}


def kill_during_save(source: Path, target: Path, trials: int, rng: random.Random) -> dict:
    acknowledged: set[str] = set()  # the edits of the last save that completed, in any trial so far
    lost = unloadable = saves = 0
    for trial in range(trials):
        lines = _run_until_killed(CHILD_SAVE, [str(source), str(target), str(trial)], rng, 1.0, 25.0)
        saves += len(lines)
        if lines:
            acknowledged = set(lines[-1].split())
        leftovers = len([path for path in target.parent.iterdir() if path.name.startswith(".")])
        stored = _stored_prompts(target, f"save trial {trial}") if target.exists() or acknowledged else {}
        if stored is None:
            unloadable += 1
            continue
        lost_now = len(acknowledged - set(stored))
        lost += lost_now
        print(f"save trial {trial}: {len(lines)} saves completed, {len(acknowledged)} edits in the last one, "
              f"{lost_now} lost, {leftovers} staging folders left by the kill", flush=True)
    return {"trials": trials, "saves_completed": saves, "edits_in_last_save": len(acknowledged), "lost": lost,
            "unloadable_folders": unloadable}


def concurrent_operations(folder: Path, threads: int, operations: int, rng: random.Random) -> dict:
    editor = SERAC.load(folder, device="cpu")
    live = [f"What is the capital of country number {i}?" for i in range(40)]
    others = [f"Who wrote the book called Volume {i}?" for i in range(40)]
    editor.add_edits([(prompt, f"City {i}") for i, prompt in enumerate(live)])
    route_inputs = [rng.sample(live, 2) + rng.sample(others, 2) for _ in range(30)]
    score_inputs = [(rng.sample(live + others, 2), ["Paris", "William Shakespeare"]) for _ in range(20)]
    query_inputs = [[rng.choice(live), rng.choice(others)] for _ in range(10)]

    def route_of(prompts):
        # The routing decision; an out-of-scope prompt's nearest edit may change as edits are added.
        return [(route.in_scope, route.edit_id, route.probability) if route.in_scope else (False,) for route in editor.route(prompts)]

    def score_of(prompts, targets):
        return [score.logprobs.tolist() for score in editor.score(prompts, targets)]

    def answers_of(prompts):
        return [(result.text, result.routed, result.edit_id) for result in editor.query_batch(prompts, max_new_tokens=3)]

    started = time.perf_counter()
    expected_routes = [route_of(prompts) for prompts in route_inputs]
    expected_scores = [score_of(*pair) for pair in score_inputs]
    expected_answers = [answers_of(prompts) for prompts in query_inputs]
    reference_seconds = time.perf_counter() - started

    mismatches = {"route": 0, "score": 0, "query": 0, "embedding": 0}
    counts = {"route": 0, "score": 0, "query": 0, "embedding": 0, "add": 0}
    errors: list[str] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        local = random.Random(worker)
        for step in range(operations):
            draw = local.random()
            try:
                if draw < 0.40:
                    k = local.randrange(len(route_inputs))
                    kind, ok = "route", route_of(route_inputs[k]) == expected_routes[k]
                elif draw < 0.65:
                    editor.add_edit(f"Worker {worker} adds fact number {step}?", f"value {step}")
                    kind, ok = "add", True
                elif draw < 0.85:
                    k = local.randrange(len(score_inputs))
                    kind, ok = "score", score_of(*score_inputs[k]) == expected_scores[k]
                elif draw < 0.95:
                    k = local.randrange(len(query_inputs))
                    kind, ok = "query", answers_of(query_inputs[k]) == expected_answers[k]
                else:
                    prompt = local.choice(live)
                    kind, ok = "embedding", bool(np.array_equal(editor.classifier.encode([prompt]), editor.classifier.encode([prompt])))
            except Exception as error:  # noqa: BLE001 - counted
                with lock:
                    errors.append(repr(error))
                continue
            with lock:
                counts[kind] += 1
                if not ok:
                    mismatches[kind] += 1
            if (step + 1) % 250 == 0:
                print(f"thread {worker}: {step + 1} operations, {time.perf_counter() - started:.0f} s", flush=True)

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    threaded_seconds = time.perf_counter() - started

    # Every stored edit's vector must be the embedding one thread computes for its prompt now.
    prompts = {edit.id: edit.prompt for edit in editor.memory.list()}
    wrong_vectors = 0
    for ids, vectors in editor.memory._store.iter_vectors(batch_size=512):
        recomputed = editor.classifier.encode([prompts[i] for i in ids.tolist()])
        wrong_vectors += int((np.abs(vectors - recomputed).max(axis=1) > 1e-5).sum())
    final_routes_identical = all(route_of(p) == e for p, e in zip(route_inputs, expected_routes))
    editor.close()
    return {"threads": threads, "operations_per_thread": operations, "counts": counts, "mismatches": mismatches,
            "errors": len(errors), "first_errors": errors[:3], "stored_edits": len(prompts),
            "stored_vectors_not_single_threaded": wrong_vectors, "routes_identical_after": final_routes_identical,
            "threaded_seconds": round(threaded_seconds, 1), "reference_seconds": round(reference_seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--kill-trials", type=int, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--operations", type=int, default=2500)
    parser.add_argument("--only", choices=["kill-add", "kill-save", "threads"], action="append")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the threads share the cores; intra-op threads would only contend
    rng = random.Random(args.seed)
    only = set(args.only or ["kill-add", "kill-save", "threads"])
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    build_editor(args.workdir / "editor")
    results = {}
    if "kill-add" in only:
        results["kill_during_add_edits"] = kill_during_add(args.workdir / "editor", args.kill_trials, rng)
        print(json.dumps(results["kill_during_add_edits"]), flush=True)
    if "kill-save" in only:
        source = args.workdir / "save-source"
        build_editor(source)
        results["kill_during_save"] = kill_during_save(source, args.workdir / "saves" / "target", args.kill_trials, rng)
        print(json.dumps(results["kill_during_save"]), flush=True)
    if "threads" in only:
        results["concurrent_operations"] = concurrent_operations(args.workdir / "editor", args.threads, args.operations, rng)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
