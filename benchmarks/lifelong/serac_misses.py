"""Why a SERAC editor misses the edits it holds: after the study's edits (one at a time, in the
study's order), each edit prompt and rephrase it does not answer with its fact's latest target,
sorted by what went wrong.

- out of scope: the scope classifier routes the prompt to no edit, so the base model answers;
- another fact's edit: routed to an edit of a different fact (a look-alike question);
- an older edit of its fact: routed to an edit its fact's later edit superseded;
- its latest edit, wrong answer: routed right, and the counterfactual model does not give the target.

Success is the study's strict one against each fact's latest target (`edit_success_latest`,
`rephrase_success_latest`: every target token the argmax, teacher forced), so the counts add up
to the study's misses at the last checkpoint.

    python benchmarks/lifelong/serac_misses.py outputs/counterfact_zsre_v3/editor --dataset zsre

Edits go into a copy of the editor (the folder given is left as it is). Prints Markdown tables.
"""

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tqdm import tqdm

from serac.cli import CONFIG_DIR
from serac.core.evaluation import edit_step
from serac.core.forgetting import ForgettingProbe
from serac.core.registry import load_working_copy
from serac.core.results import markdown_table
from serac.lifelong_study import StudySettings, study_records

CAUSES = ("out of scope", "another fact's edit", "an older edit of its fact", "its latest edit, wrong answer")


def miss_cause(route, own_fact, latest_prompts: set[str], fact_of_prompt: dict) -> str:
    """Which of CAUSES explains a missed prompt, from where the router sent it."""
    if not route.in_scope:
        return CAUSES[0]
    if fact_of_prompt[route.prompt] != own_fact:
        return CAUSES[1]
    return CAUSES[3] if route.prompt in latest_prompts else CAUSES[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("editor", type=Path, help="a saved SERAC editor folder")
    parser.add_argument("--dataset", default="zsre", choices=["counterfact", "zsre"])
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--examples", type=int, default=5, help="missed prompts shown per cause")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--subject-scope", action="store_true", help="route with SERACConfig.subject_scope on")
    args = parser.parse_args()

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        config = OmegaConf.to_container(compose("study", [f"max_edits={args.edits}", "results_dir=unused"]), resolve=True)
    settings = StudySettings.from_config({**config, "data_dir": args.data_dir}, [])
    records, _ = study_records(args.dataset, ForgettingProbe.build(settings.forgetting), settings, args.data_dir)

    latest = {record.fact: record for record in records}  # later edits of a fact overwrite earlier ones
    latest_prompts = {record.prompt for record in latest.values()}
    fact_of_prompt = {record.prompt: record.fact for record in records}
    queries = [(record, kind, prompt) for record in records
               for kind, prompt in [("edit", record.prompt), *(("rephrase", r) for r in record.rephrases)]]

    with tempfile.TemporaryDirectory() as scratch:
        editor = load_working_copy(args.editor, Path(scratch) / "editor")
        try:
            editor.reset()
            if args.subject_scope:
                editor.configure(subject_scope=True)
            for record in tqdm(records, desc="editing", unit="edit"):
                edit_step(editor, [record])  # one at a time, as the study makes them
            prompts = [prompt for _, _, prompt in queries]
            scores = editor.score(prompts, [latest[record.fact].target for record, _, _ in queries])
            missed = [(query, route) for query, score, route in zip(queries, scores, editor.route(prompts)) if not score.exact_match]
            missed_prompts = [prompt for (_, _, prompt), _ in missed]
            answers = dict(zip(missed_prompts, (result.text for result in editor.query_batch(missed_prompts)))) if missed else {}
        finally:
            editor.close()

    counts = Counter((kind, miss_cause(route, record.fact, latest_prompts, fact_of_prompt)) for (record, kind, _), route in missed)
    totals = Counter(kind for _, kind, _ in queries)
    print(f"{len(records)} {args.dataset} edits; strict misses against each fact's latest target:\n")
    print(markdown_table([{"cause": cause, **{f"{kind} prompts": f"{counts[kind, cause]} of {totals[kind]}" for kind in ("edit", "rephrase")}}
                          for cause in CAUSES]))
    for cause in CAUSES:
        shown = [(record, prompt, route) for (record, _, prompt), route in missed
                 if miss_cause(route, record.fact, latest_prompts, fact_of_prompt) == cause][: args.examples]
        if shown:
            print(f"\n{cause}:\n")
            print(markdown_table([{"prompt": prompt, "latest target": latest[record.fact].target, "answer": answers[prompt],
                                   "routed to edit": route.prompt or "-", "scope probability": round(route.probability, 3)}
                                  for record, prompt, route in shown]))


if __name__ == "__main__":
    main()
