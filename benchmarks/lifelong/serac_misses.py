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

from collections import Counter

from serac_study_copy import argument_parser, emptied_copy, study_probe_and_records
from tqdm import tqdm

from serac.core.evaluation import edit_step
from serac.core.results import markdown_table

CAUSES = ("out of scope", "another fact's edit", "an older edit of its fact", "its latest edit, wrong answer")


def miss_cause(route, own_fact, latest_prompts: set[str], fact_of_prompt: dict) -> str:
    """Which of CAUSES explains a missed prompt, from where the router sent it."""
    if not route.in_scope:
        return CAUSES[0]
    if fact_of_prompt[route.prompt] != own_fact:
        return CAUSES[1]
    return CAUSES[3] if route.prompt in latest_prompts else CAUSES[2]


def main() -> None:
    parser = argument_parser(__doc__, "zsre")
    parser.add_argument("--examples", type=int, default=5, help="missed prompts shown per cause")
    args = parser.parse_args()
    _, records = study_probe_and_records(args.dataset, args.edits, args.data_dir)

    latest = {record.fact: record for record in records}  # later edits of a fact overwrite earlier ones
    latest_prompts = {record.prompt for record in latest.values()}
    fact_of_prompt = {record.prompt: record.fact for record in records}
    queries = [(record, kind, prompt) for record in records
               for kind, prompt in [("edit", record.prompt), *(("rephrase", r) for r in record.rephrases)]]

    with emptied_copy(args.editor, args.subject_scope) as editor:
        for record in tqdm(records, desc="editing", unit="edit"):
            edit_step(editor, [record])  # one at a time, as the study makes them
        prompts = [prompt for _, _, prompt in queries]
        scores = editor.score(prompts, [latest[record.fact].target for record, _, _ in queries])
        missed = [(query, route) for query, score, route in zip(queries, scores, editor.route(prompts)) if not score.exact_match]
        missed_prompts = [prompt for (_, _, prompt), _ in missed]
        answers = dict(zip(missed_prompts, (result.text for result in editor.query_batch(missed_prompts)))) if missed else {}

    causes = [(kind, miss_cause(route, record.fact, latest_prompts, fact_of_prompt)) for (record, kind, _), route in missed]
    counts = Counter(causes)
    # A greedy answer that spells the target can still miss: teacher forcing scores the target's own
    # tokens, and the model may spell the same text with other ones.
    spelled = Counter(cause for cause, ((record, _, prompt), _) in zip(causes, missed)
                      if answers[prompt].strip().startswith(latest[record.fact].target.strip()))
    totals = Counter(kind for _, kind, _ in queries)
    print(f"{len(records)} {args.dataset} edits; strict misses against each fact's latest target:\n")
    print(markdown_table([{"cause": cause, **{f"{kind} prompts": f"{counts[kind, cause]} of {totals[kind]}" for kind in ("edit", "rephrase")},
                           "of them, generated answer spells the target": sum(spelled[kind, cause] for kind in ("edit", "rephrase"))}
                          for cause in CAUSES]))
    for cause in CAUSES:
        shown = [(record, prompt, route) for ((record, _, prompt), route), (_, its) in zip(missed, causes) if its == cause][: args.examples]
        if shown:
            print(f"\n{cause}:\n")
            print(markdown_table([{"prompt": prompt, "latest target": latest[record.fact].target, "answer": answers[prompt],
                                   "routed to edit": route.prompt or "-", "scope probability": round(route.probability, 3)}
                                  for record, prompt, route in shown]))


if __name__ == "__main__":
    main()
