"""Where the scale run's probes are routed: for each probe's edit prompt, paraphrase and locality
prompt, whether it reached its own edit, another edit (of the probe's subject or not, and which),
or the base model, and whether the answer is right as `scale_run.py` counts it (teacher forced:
every target token the argmax; for a locality prompt, the base model's argmax unchanged).
Explains the quality columns of `scale_run.py` (run on a finished run folder, not while it runs).

    .venv/bin/python benchmarks/scale/probe_routes.py --run-dir RUN [--probes 200] [--seed 0] [--examples 5]
    # keep every probe's outcome, and list the probes whose outcome differs from another run's file
    .venv/bin/python benchmarks/scale/probe_routes.py --run-dir RUN --out RUN/probes.jsonl [--compare OTHER/probes.jsonl]
"""

import argparse
import json
from collections import Counter
from pathlib import Path

import torch
from distractors import real_edits
from scale_run import pick_probes

from serac import SERAC


def outcome(route, probe, should_route: bool) -> str:
    if not route.in_scope:
        return "base model" + ("" if not should_route else " (missed)")
    if route.prompt == probe.prompt and route.target == probe.target:
        return "own edit" + ("" if should_route else " (wrongly in scope)")
    # an edit of the probe's subject (in another relation) or of another subject
    return "another edit" + (" of its subject" if probe.subject and probe.subject in route.prompt else "")


def probe_outcomes(editor: SERAC, probes: list) -> list[dict]:
    """One row per probe and kind: the route taken and whether the answer is exact."""
    rows = []
    # every rephrase and locality prompt of a probe, as serac.core.evaluation.measure counts them
    edit = [(p, p.prompt, p.target) for p in probes]
    paraphrase = [(p, q, p.target) for p in probes for q in p.rephrases]
    locality = [(p, q, a) for p in probes for q, a in zip(p.locality_prompts, p.locality_answers)]
    for kind, triples, should_route in (("edit prompt", edit, True), ("paraphrase", paraphrase, True), ("locality prompt", locality, False)):
        owners, queries, targets = (list(column) for column in zip(*triples))
        routes = editor.route(queries)
        scores = editor.score(queries, targets)
        if should_route:
            right = [score.exact_match for score in scores]
        else:  # kept, as drawdown counts it: the same argmax at every target position as the base model
            right = [torch.equal(a.predicted_ids, b.predicted_ids) for a, b in zip(scores, editor.base.score(queries, targets))]
        for probe, query, route, ok in zip(owners, queries, routes, right):
            rows.append({
                "kind": kind, "probe": probe.source, "query": query, "should_route": should_route,
                "outcome": outcome(route, probe, should_route), "routed_prompt": route.prompt,
                "routed_target": route.target, "probability": round(route.probability, 4), "right": ok,
                "probe_prompt": probe.prompt, "probe_target": probe.target,
            })
    return rows


def report(rows: list[dict], examples: int) -> None:
    for kind in dict.fromkeys(row["kind"] for row in rows):
        of_kind = [row for row in rows if row["kind"] == kind]
        routes = Counter(row["outcome"] for row in of_kind)
        wrong = Counter(row["outcome"] for row in of_kind if not row["right"])
        print(f"\n{kind}: " + ", ".join(f"{name} {count}" for name, count in routes.most_common())
              + f"; answers wrong: {sum(wrong.values())} (" + ", ".join(f"{n} {c}" for n, c in wrong.most_common()) + ")")
        shown = Counter()
        for row in of_kind:
            failed = not row["right"] or not row["outcome"].startswith("own edit" if row["should_route"] else "base model")
            if not failed or shown[row["outcome"]] >= examples:
                continue
            shown[row["outcome"]] += 1
            print(f"  [{row['outcome']}, answer {'right' if row['right'] else 'wrong'}] {row['query']!r} "
                  f"(probe: {row['probe_prompt']!r} -> {row['probe_target']!r})\n"
                  f"      routed to {row['routed_prompt']!r} -> {row['routed_target']!r}, p = {row['probability']:.3f}")


def compare(rows: list[dict], other_file: Path) -> None:
    """The probes whose route or answer differ between this run and another run's --out file."""
    def key(row: dict) -> tuple:
        return row["kind"], row["probe"], row["query"]

    other = {key(row): row for row in map(json.loads, other_file.read_text().splitlines())}
    pairs = [(row, other[key(row)]) for row in rows if key(row) in other]
    differing = [(mine, theirs) for mine, theirs in pairs if (mine["routed_prompt"], mine["right"]) != (theirs["routed_prompt"], theirs["right"])]
    print(f"\n{len(differing)} probe queries differ from {other_file}:")
    for mine, theirs in differing:
        print(f"  [{mine['kind']}] {mine['query']!r}\n"
              f"      here:  {mine['outcome']}, answer {'right' if mine['right'] else 'wrong'}, {mine['routed_prompt']!r} p = {mine['probability']:.3f}\n"
              f"      there: {theirs['outcome']}, answer {'right' if theirs['right'] else 'wrong'}, {theirs['routed_prompt']!r} p = {theirs['probability']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=5, help="examples of each failure printed")
    parser.add_argument("--out", type=Path, help="write every probe's outcome here (JSON lines)")
    parser.add_argument("--compare", type=Path, help="another run's --out file: list the probes that differ")
    arguments = parser.parse_args()
    probes = pick_probes(real_edits(), arguments.probes, arguments.seed)
    editor = SERAC.load(f"{arguments.run_dir}/editor")
    try:
        print(f"{editor.memory.count():,} edits in memory, threshold {editor.config.threshold:.3f}, conflicts {editor.config.conflicts}")
        rows = probe_outcomes(editor, probes)
    finally:
        editor.close()
    report(rows, arguments.examples)
    if arguments.out:
        arguments.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    if arguments.compare:
        compare(rows, arguments.compare)


if __name__ == "__main__":
    main()
