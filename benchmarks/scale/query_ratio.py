"""Re-time a finished scale run's editor: a query out of scope and in scope against the base model
answering alone, the two taking turns on each prompt (`scale_run.query_timings`). For a quiet
machine's figure at a size whose fill ran beside other jobs; the row goes to RUN/latency.jsonl.

    .venv/bin/python benchmarks/scale/query_ratio.py --run-dir RUN [--prompts 8] [--repeats 3]
"""

import argparse
import datetime
import json
import os
from pathlib import Path

from distractors import real_edits
from scale_run import pick_probes, query_timings

from serac import SERAC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--prompts", type=int, default=8, help="probes' paraphrases (in scope) and locality prompts (out of scope)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    if arguments.prompts < 1 or arguments.repeats < 1:
        raise SystemExit("--prompts and --repeats must be >= 1")
    probes = pick_probes(real_edits(), 200, arguments.seed)
    in_scope = [probe.rephrases[0] for probe in probes[: arguments.prompts]]
    out_of_scope = [probe.locality_prompts[0] for probe in probes[-arguments.prompts :]]
    editor = SERAC.load(arguments.run_dir / "editor")
    try:
        editor.memory.wait_for_index_build()
        row = {
            "edits": editor.memory.count(),
            "date": datetime.date.today().isoformat(),
            "threads": os.environ.get("OMP_NUM_THREADS", "default"),
            "prompts": arguments.prompts,
            "repeats": arguments.repeats,
            **query_timings(editor, in_scope, out_of_scope, arguments.repeats),
            "memory": editor.memory_stats(),
        }
    finally:
        editor.close()
    with (arguments.run_dir / "latency.jsonl").open("a") as rows:
        rows.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
