"""ROME / MEMIT on the first records of a data set, resumable, with the harness's metrics.

    # single protocol (edit, measure, reset), one JSON line per record, resumes where it stopped
    .venv/bin/python benchmarks/rome/run_edits.py --alg rome --dataset counterfact --split val --records 500 \
        --num-prefixes 4 --value-steps 15 --out benchmarks/rome/results/rome_counterfact.jsonl
    # one MEMIT batch of all the records (measured once, after the batch); --value-cache: a stopped
    # batch re-run with the same command reuses the values z it had found
    .venv/bin/python benchmarks/rome/run_edits.py --alg memit --batch --records 500 --value-cache outputs/memit_values ... --out ...memit.jsonl
    # the unedited model's scores on the same records (the baseline every score is compared with)
    .venv/bin/python benchmarks/rome/run_edits.py --unedited --records 500 --out benchmarks/rome/results/unedited_counterfact_val.jsonl
    # the table of what is done so far (a prefix of the records if a run was cut short; --first N: N rows)
    .venv/bin/python benchmarks/rome/run_edits.py --summarize benchmarks/rome/results/*.jsonl [--first N]

Metrics come from `serac.core.evaluation.measure` (the project's strict edit success, drawdown,
and CounterFact's efficacy / paraphrase / neighbourhood scores when records have a true object).
"""

import argparse
import json
import time
from pathlib import Path

import torch

from mend.memit import MEMITConfig, MEMITEditor
from mend.rome import ROMEConfig, ROMEEditor
from serac.core.data import load_records
from serac.core.evaluation import Unedited, measure
from serac.core.models import load_language_model

SHOWN = ("efficacy_score", "paraphrase_score", "neighborhood_score", "edit_success", "rephrase_success",
         "drawdown", "locality_accuracy_drop")


def build(args):
    language_model = load_language_model(args.model, "cpu", args.prompt_format)
    common = dict(model_name=args.model, prompt_format=args.prompt_format, num_prefixes=args.num_prefixes, value_steps=args.value_steps,
                  early_stop_nll=args.early_stop_nll, stats_tokens=args.stats_tokens,
                  **({"clamp_factor": args.clamp_factor} if args.clamp_factor is not None else {}))
    if args.alg == "rome":
        config = ROMEConfig(**common, **({"layer": args.layers[0]} if args.layers else {}))
        return ROMEEditor(language_model, config)
    config = MEMITConfig(**common, mom2_weight=args.mom2_weight, value_cache=args.value_cache, **({"layers": args.layers} if args.layers else {}))
    return MEMITEditor(language_model, config)


def run(args) -> None:
    torch.set_num_threads(args.threads)
    records = load_records(args.dataset, args.split, limit=args.records)
    done = {json.loads(line)["source"] for line in args.out.read_text().splitlines()} if args.out.exists() else set()
    todo = [record for record in records if record.source not in done]
    if not todo:
        return
    editor = build(args)
    started = time.perf_counter()
    if not args.unedited:
        editor.second_moments()
        editor.prefixes()
    setup_seconds = time.perf_counter() - started
    groups = [todo] if args.batch else [[record] for record in todo]
    for group in groups:
        before = Unedited.of(editor, group, with_answers=False)
        started = time.perf_counter()
        if not args.unedited:
            editor.add_edits(group)
        seconds = time.perf_counter() - started
        row = measure(editor, group, before)
        row.update(source=group[0].source if len(group) == 1 else f"batch of {len(group)}", edits=len(group),
                   seconds_per_edit=seconds / len(group), setup_seconds=setup_seconds, config=vars(editor.config))
        editor.reset()
        with args.out.open("a") as file:
            file.write(json.dumps(row, default=str) + "\n")
        print({key: row[key] for key in ("source", *SHOWN, "seconds_per_edit") if key in row}, flush=True)


def summarize(files: list[Path], first: int | None = None) -> None:
    print("| run | edits | " + " | ".join(SHOWN) + " | s/edit |\n|" + "---|" * (len(SHOWN) + 3))
    for file in files:
        rows = [json.loads(line) for line in file.read_text().splitlines()][:first] if file.exists() else []
        if not rows:
            print(f"| {file.stem} | 0 (no record finished) |")
            continue
        edits = sum(row["edits"] for row in rows)
        cells = []
        for key in (*SHOWN, "seconds_per_edit"):
            weighted = [(row["edits"], row[key]) for row in rows if key in row]
            cells.append(f"{sum(w * v for w, v in weighted) / sum(w for w, _ in weighted):.3f}" if weighted else "-")
        print(f"| {file.stem} | {edits} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summarize", type=Path, nargs="+")
    parser.add_argument("--first", type=int, help="summarize only the first rows of each file")
    parser.add_argument("--alg", choices=("rome", "memit"), default="rome")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dataset", default="counterfact")
    parser.add_argument("--split", default="val")
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--batch", action="store_true", help="MEMIT: all records in one batch")
    parser.add_argument("--unedited", action="store_true", help="measure the unedited model (the scores' baseline)")
    parser.add_argument("--prompt-format", choices=("auto", "plain", "chat"), default="plain",
                        help="plain: CounterFact's cloze protocol, as ROME/MEMIT measure it (auto: the chat template)")
    parser.add_argument("--layers", type=int, nargs="+")
    parser.add_argument("--num-prefixes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning on a shared machine)")
    parser.add_argument("--value-steps", type=int, default=15)
    parser.add_argument("--early-stop-nll", type=float, default=5e-2, help="stop the value optimisation below this NLL")
    parser.add_argument("--clamp-factor", type=float, help="bound on |z - z0| / |z0| (default: the method's config, ROME 4, MEMIT 0.75)")
    parser.add_argument("--stats-tokens", type=int, default=100_000)
    parser.add_argument("--mom2-weight", type=float, default=1.5e4, help="MEMIT's lambda")
    parser.add_argument("--value-cache", help="MEMIT: keep each z in this folder, so a stopped batch resumes")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize, args.first)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        run(args)


if __name__ == "__main__":
    main()
