"""kill -9 of `serac-serve` during a stream of edit POSTs; every acknowledged edit must be there
after the restart.

    .venv/bin/python benchmarks/serve/bench_kill.py --editor tiny-serac --trials 20 --workdir /tmp/serve-kill

Each trial starts the server on the same folder, checks that it holds every edit acknowledged
(201) in all earlier trials with its prompt, then runs `--posters` clients that POST batches of
1-3 edits as fast as they are answered, and kills the server (SIGKILL) at a random moment
0.5-`--max-wait` s later. A last start checks the edits of the last trial. `--editor` is a
saved editor folder (copied, never written) or "tiny-serac" / "tiny-ft" (built).
"""

import argparse
import json
import random
import threading
import time
from pathlib import Path

import httpx
from server_process import AUTH, ServerProcess, prepare


def post_until_killed(url: str, poster: int, trial: int, acknowledged: dict, refused: list, lock: threading.Lock,
                      stop: threading.Event, rng: random.Random) -> None:
    batch = 0
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            edits = [{"prompt": f"trial {trial} poster {poster} edit {batch}-{i}?", "target": f"answer {batch}-{i}"}
                     for i in range(rng.randint(1, 3))]
            try:
                response = client.post(f"{url}/v1/edits", json={"edits": edits}, headers=AUTH)
            except httpx.HTTPError:
                return  # the server is gone: this batch was never acknowledged
            with lock:
                if response.status_code != 201:
                    refused.append(f"{response.status_code} {response.text[:200]}")
                    continue
                acknowledged.update({edit["id"]: edit["prompt"] for edit in response.json()["data"]})
            batch += 1


def check(server: ServerProcess, acknowledged: dict) -> int:
    stored = server.stored_edits()
    return sum(stored.get(edit_id) != prompt for edit_id, prompt in acknowledged.items())


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parse.add_argument("--editor", default="tiny-serac")
    parse.add_argument("--trials", type=int, default=20)
    parse.add_argument("--posters", type=int, default=4)
    parse.add_argument("--max-wait", type=float, default=4.0)
    parse.add_argument("--workdir", type=Path, default=Path("/tmp/serve-kill"))
    parse.add_argument("--seed", type=int, default=0)
    args = parse.parse_args()
    rng = random.Random(args.seed)
    folder, log = args.workdir / "editor", args.workdir / "server.log"
    prepare(args.editor, folder)
    log.unlink(missing_ok=True)
    acknowledged: dict[str, str] = {}
    refused: list[str] = []
    lock = threading.Lock()
    passed, lost_total, started = 0, 0, time.monotonic()
    for trial in range(args.trials + 1):
        server = ServerProcess(folder, log)
        lost = check(server, acknowledged)
        if trial > 0:  # this start is the restart after trial - 1's kill
            passed += lost == 0
            lost_total += lost
            print(f"trial {trial - 1}: {len(acknowledged)} acknowledged edits so far, {lost} lost "
                  f"(restart took {server.started_in:.1f} s)", flush=True)
        if trial == args.trials:
            server.stop()
            break
        stop = threading.Event()
        posters = [threading.Thread(target=post_until_killed, args=(server.url, p, trial, acknowledged, refused, lock, stop, random.Random(rng.random())))
                   for p in range(args.posters)]
        for poster in posters:
            poster.start()
        time.sleep(rng.uniform(0.5, args.max_wait))
        server.kill()
        stop.set()
        for poster in posters:
            poster.join()
    summary = {"editor": args.editor, "trials": args.trials, "trials_with_every_acknowledged_edit": passed,
               "acknowledged_edits": len(acknowledged), "lost": lost_total, "refused": len(refused), "seconds": round(time.monotonic() - started)}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
