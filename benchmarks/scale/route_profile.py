"""Where a routed query's time goes in a scale run's editor: milliseconds per `route()` of one
query (the probes' edit prompts, paraphrases and locality prompts, one at a time) and the
functions that take it (cProfile, cumulative). Run on a finished run folder, not while it runs.

    .venv/bin/python benchmarks/scale/route_profile.py --run-dir RUN [--queries 12] [--top 15]
"""

import argparse
import cProfile
import pstats
import time

from distractors import real_edits
from scale_run import pick_probes

from serac import SERAC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--queries", type=int, default=12, help="probes' texts routed, a third of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=15, help="functions listed")
    arguments = parser.parse_args()
    probes = pick_probes(real_edits(), 200, arguments.seed)[: max(1, arguments.queries // 3)]
    queries = [text for probe in probes for text in (probe.prompt, probe.rephrases[0], probe.locality_prompts[0])]
    editor = SERAC.load(f"{arguments.run_dir}/editor")
    try:
        editor.route(queries[:1])  # warm-up
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        for query in queries:
            editor.route([query])
        profile.disable()
        elapsed = time.perf_counter() - started
        print(f"{editor.memory.count():,} edits, {editor.memory_stats()['search']} search: "
              f"{1000 * elapsed / len(queries):.1f} ms per routed query ({len(queries)} queries, profiler on)")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(arguments.top)
    finally:
        editor.close()


if __name__ == "__main__":
    main()
