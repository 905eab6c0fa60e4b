"""Where the scale run's probes are routed: for each probe's edit prompt, paraphrase and locality
prompt, whether it reached its own edit, another edit (and whose), or the base model. Explains
the quality columns of `scale_run.py` (run on a finished run folder, not while it runs).

    .venv/bin/python benchmarks/scale/probe_routes.py --run-dir RUN [--probes 200] [--seed 0] [--examples 5]
"""

import argparse
from collections import Counter

from scale_run import pick_probes
from distractors import real_edits

from serac import SERAC


def outcome(route, probe, should_route: bool) -> str:
    if not route.in_scope:
        return "base model" + ("" if not should_route else " (missed)")
    if route.prompt == probe.prompt and route.target == probe.target:
        return "own edit" + ("" if should_route else " (wrongly in scope)")
    return "another edit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=5, help="examples of each failure printed")
    arguments = parser.parse_args()
    probes = pick_probes(real_edits(), arguments.probes, arguments.seed)
    editor = SERAC.load(f"{arguments.run_dir}/editor")
    try:
        print(f"{editor.memory.count():,} edits in memory, threshold {editor.config.threshold:.3f}, conflicts {editor.config.conflicts}")
        for kind, queries, should_route in (
            ("edit prompt", [p.prompt for p in probes], True),
            ("paraphrase", [p.rephrases[0] for p in probes], True),
            ("locality prompt", [p.locality_prompts[0] for p in probes], False),
        ):
            routes = editor.route(queries)
            outcomes = [outcome(route, probe, should_route) for route, probe in zip(routes, probes)]
            print(f"\n{kind}: " + ", ".join(f"{name} {count}" for name, count in Counter(outcomes).most_common()))
            shown = Counter()
            for query, route, probe, result in zip(queries, routes, probes, outcomes):
                if result.startswith("own edit") and should_route or shown[result] >= arguments.examples:
                    continue
                shown[result] += 1
                print(f"  [{result}] {query!r} (probe: {probe.prompt!r} -> {probe.target!r})\n"
                      f"      routed to {route.prompt!r} -> {route.target!r}, p = {route.probability:.3f}")
    finally:
        editor.close()


if __name__ == "__main__":
    main()
