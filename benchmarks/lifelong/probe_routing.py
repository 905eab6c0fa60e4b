"""Which facts of the study's forgetting probe a SERAC editor routes into the scope of an edit, as its
memory fills with the study's edits in the study's order.

The study's "unedited true over false" moves for SERAC only when a probe prompt is routed to a stored
edit (the base model answers everything else), so this lists those prompts, the edit each is routed
to and its scope probability, at each checkpoint: what "zero forgetting" needs to be zero.

    python benchmarks/lifelong/probe_routing.py outputs/counterfact_zsre_v3/editor --edits 1000

Edits go into a copy of the editor (the folder given is left as it is). Prints a Markdown table.
"""

import argparse
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from serac.cli import CONFIG_DIR
from serac.core.evaluation import edit_step
from serac.core.forgetting import ForgettingProbe
from serac.core.registry import load_working_copy
from serac.core.results import markdown_table
from serac.lifelong_study import StudySettings, study_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("editor", type=Path, help="a saved SERAC editor folder")
    parser.add_argument("--dataset", default="counterfact", choices=["counterfact", "zsre"])
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--subject-scope", action="store_true", help="route with SERACConfig.subject_scope on")
    args = parser.parse_args()

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        config = OmegaConf.to_container(compose("study", [f"max_edits={args.edits}", "results_dir=unused"]), resolve=True)
    settings = StudySettings.from_config({**config, "data_dir": args.data_dir}, [])
    probe = ForgettingProbe.build(settings.forgetting)
    records, _ = study_records(args.dataset, probe, settings, args.data_dir)
    prompts = [fact.prompt for fact in probe.facts]

    rows, done = [], 0
    with tempfile.TemporaryDirectory() as scratch:
        editor = load_working_copy(args.editor, Path(scratch) / "editor")
        try:
            editor.reset()
            if args.subject_scope:
                editor.configure(subject_scope=True)
            for checkpoint in sorted(t for t in args.checkpoints if t <= len(records)):
                for record in records[done:checkpoint]:  # one edit at a time, as the study makes them
                    edit_step(editor, [record])
                done = checkpoint
                for fact, route in zip(probe.facts, editor.route(prompts)):
                    if route.in_scope:
                        rows.append({"T": checkpoint, "probe prompt": fact.prompt, "routed to edit": route.prompt,
                                     "its target": route.target, "scope probability": route.probability})
                print(f"T={checkpoint}: {sum(row['T'] == checkpoint for row in rows)} of {len(prompts)} probe prompts in scope")
        finally:
            editor.close()
    print(markdown_table(rows) if rows else "No probe prompt is routed into scope.")


if __name__ == "__main__":
    main()
