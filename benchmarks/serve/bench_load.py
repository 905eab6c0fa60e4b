"""Load on `serac-serve`: `--clients` concurrent clients on 127.0.0.1 for `--duration` seconds,
mixed queries and edit additions; then the same operations through the Python API in one
process, one after another, for the same time.

    .venv/bin/python benchmarks/serve/bench_load.py --editor tiny-serac --clients 16 --duration 60

Each client draws, per operation, an edit addition (`--edit-share`) or a query with
`--max-tokens` new tokens: half the queries ask the prompt of an edit already acknowledged (in
scope), half a question no edit covers. Reported: errors (any non-2xx or failed request),
acknowledged edits missing from the server afterwards, p50/p99 latencies, and queries per
second, against the Python API replaying the same operations in their order (the ratio).
`--editor` is a saved editor folder (copied, never written) or "tiny-serac" (built).
"""

import argparse
import json
import random
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from server_process import AUTH, ServerProcess, prepare

from serac.core.memory_editor import MemoryEditor
from serac.core.registry import editor_class
from serac.core.saving import saved_editor_name

OUT_OF_SCOPE = [f"What is the population of the town called Example {i}?" for i in range(64)]


def run_clients(url: str, clients: int, duration: float, edit_share: float, max_tokens: int, seed: int) -> tuple[list[dict], dict, list]:
    operations, acknowledged, errors = [], {}, []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def client_loop(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        with httpx.Client(timeout=300) as http:
            step = 0
            while time.monotonic() < deadline:
                if rng.random() < edit_share:
                    kind, prompt = "edit", f"Client {number} asks about fact number {step}?"
                    request = ("/v1/edits", {"prompt": prompt, "target": f"value {number}-{step}"})
                else:
                    with lock:
                        known = list(acknowledged.values())
                    prompt = rng.choice(known) if known and rng.random() < 0.5 else rng.choice(OUT_OF_SCOPE)
                    kind, request = "query", ("/v1/completions", {"prompt": prompt, "max_tokens": max_tokens})
                began = time.monotonic()
                try:
                    response = http.post(url + request[0], json=request[1], headers=AUTH)
                    ok = response.status_code in (200, 201)
                except httpx.HTTPError as error:
                    response, ok = None, False
                    with lock:
                        errors.append(repr(error))
                seconds = time.monotonic() - began
                with lock:
                    operations.append({"kind": kind, "prompt": prompt, "began": began, "seconds": seconds, "ok": ok})
                    if response is not None and not ok:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                    if ok and kind == "edit":
                        edit = response.json()["data"][0]
                        acknowledged[edit["id"]] = edit["prompt"]
                step += 1

    threads = [threading.Thread(target=client_loop, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return operations, acknowledged, errors


def replay_in_process(folder: Path, operations: list[dict], duration: float, max_tokens: int) -> list[dict]:
    """The same operations, in the order they began, through the Python API; stops after `duration` s."""
    editor = editor_class(saved_editor_name(folder)).load(folder, device="cpu")
    timed = []
    try:
        deadline = time.monotonic() + duration
        for operation in sorted(operations, key=lambda op: op["began"]):
            if time.monotonic() >= deadline:
                break
            began = time.monotonic()
            if operation["kind"] == "edit":
                editor.add_edit(operation["prompt"], "value")
            else:
                editor.query(operation["prompt"], max_new_tokens=max_tokens)
            timed.append({"kind": operation["kind"], "seconds": time.monotonic() - began})
    finally:
        if isinstance(editor, MemoryEditor):
            editor.close()
    return timed


def summary(operations: list[dict], wall_seconds: float) -> dict:
    result = {"wall_seconds": round(wall_seconds, 1)}
    for kind in ("query", "edit"):
        seconds = np.array([op["seconds"] for op in operations if op["kind"] == kind and op.get("ok", True)])
        result[kind] = {"count": len(seconds), "per_second": round(len(seconds) / wall_seconds, 2),
                        "p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 1) if len(seconds) else None,
                        "p99_ms": round(float(np.percentile(seconds, 99)) * 1000, 1) if len(seconds) else None}
    return result


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parse.add_argument("--editor", default="tiny-serac")
    parse.add_argument("--clients", type=int, default=16)
    parse.add_argument("--duration", type=float, default=60.0)
    parse.add_argument("--edit-share", type=float, default=0.2)
    parse.add_argument("--max-tokens", type=int, default=8)
    parse.add_argument("--max-batch", type=int, default=16)
    parse.add_argument("--workdir", type=Path, default=Path("/tmp/serve-load"))
    parse.add_argument("--seed", type=int, default=0)
    args = parse.parse_args()
    torch.set_num_threads(1)
    served_folder, api_folder = args.workdir / "served", args.workdir / "api"
    prepare(args.editor, served_folder)
    prepare(str(served_folder), api_folder)  # the same starting editor for the Python API's run

    server = ServerProcess(served_folder, args.workdir / "server.log", "--max-batch", str(args.max_batch))
    began = time.monotonic()
    operations, acknowledged, errors = run_clients(server.url, args.clients, args.duration, args.edit_share, args.max_tokens, args.seed)
    wall = time.monotonic() - began
    stored = server.stored_edits()
    batch_sizes = server.metric_values("serac_query_batch_size")
    server.stop()
    lost = sum(stored.get(edit_id) != prompt for edit_id, prompt in acknowledged.items())

    replay_began = time.monotonic()
    replayed = replay_in_process(api_folder, operations, args.duration, args.max_tokens)
    api = summary(replayed, time.monotonic() - replay_began)
    served = summary(operations, wall)
    report = {
        "editor": args.editor, "clients": args.clients, "duration_s": args.duration, "edit_share": args.edit_share,
        "max_tokens": args.max_tokens, "max_batch": args.max_batch,
        "server": served,
        "mean_prompts_per_model_call": round(batch_sizes["serac_query_batch_size_sum"] / batch_sizes["serac_query_batch_size_count"], 2),
        "errors": len(errors), "error_samples": errors[:5], "acknowledged_edits": len(acknowledged), "lost": lost,
        "python_api_one_process": api,
        "query_throughput_ratio_server_over_api": round(served["query"]["per_second"] / api["query"]["per_second"], 2) if api["query"]["per_second"] else None,
    }
    print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
