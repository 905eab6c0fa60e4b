"""Which facts of the study's forgetting probe a SERAC editor routes into the scope of an edit, as its
memory fills with the study's edits in the study's order.

The study's "unedited true over false" moves for SERAC only when a probe prompt is routed to a stored
edit (the base model answers everything else), so this lists those prompts, the edit each is routed
to and its scope probability, at each checkpoint: what "zero forgetting" needs to be zero.

    python benchmarks/lifelong/probe_routing.py outputs/counterfact_zsre_v3/editor --edits 1000

Edits go into a copy of the editor (the folder given is left as it is). Prints a Markdown table.
"""

from serac_study_copy import argument_parser, emptied_copy, study_probe_and_records

from serac.core.evaluation import edit_step
from serac.core.results import markdown_table


def main() -> None:
    parser = argument_parser(__doc__, "counterfact")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[100, 500, 1000])
    args = parser.parse_args()
    probe, records = study_probe_and_records(args.dataset, args.edits, args.data_dir)
    prompts = [fact.prompt for fact in probe.facts]

    rows, done = [], 0
    with emptied_copy(args.editor, args.subject_scope) as editor:
        for checkpoint in sorted(t for t in args.checkpoints if t <= len(records)):
            for record in records[done:checkpoint]:  # one edit at a time, as the study makes them
                edit_step(editor, [record])
            done = checkpoint
            for fact, route in zip(probe.facts, editor.route(prompts)):
                if route.in_scope:
                    rows.append({"T": checkpoint, "probe prompt": fact.prompt, "routed to edit": route.prompt,
                                 "its target": route.target, "scope probability": route.probability})
            print(f"T={checkpoint}: {sum(row['T'] == checkpoint for row in rows)} of {len(prompts)} probe prompts in scope")
    print(markdown_table(rows) if rows else "No probe prompt is routed into scope.")


if __name__ == "__main__":
    main()
