"""The Markdown table of one study run's rows, as the per-run tables of benchmarks/lifelong/README.md show them.

    python benchmarks/lifelong/run_table.py benchmarks/lifelong/results/rome__counterfact

CounterFact runs show CounterFact's probability scores beside the token-level triple; zsRE runs
show strict edit success against the edit's own and its fact's latest target instead (zsRE dev
rewrites 116 of its 537 facts), then the forgetting measures and the seconds per edit (wall time, and
CPU time where the run recorded it).
"""

import argparse
from pathlib import Path

from serac.study_report import TOKEN_TRIPLE
from serac.study_run_folder import RunFolder

COLUMNS = {  # dataset -> (header, row key) after the token triple and their mean
    "counterfact": [("efficacy", "efficacy_score"), ("paraphrase", "paraphrase_score"), ("neighbourhood", "neighborhood_score"),
                    ("edit success (strict)", "edit_success"), ("drawdown (strict)", "drawdown")],
    "zsre": [("edit success (strict)", "edit_success"), ("against the latest target", "edit_success_latest"),
             ("superseded", "superseded"), ("drawdown (strict)", "drawdown"), ("efficacy", "efficacy_score")],
}
HEADER = ["T", "reliability (token)", "generalization (token)", "locality (token)", "mean of the three"]
FORGETTING = ["held-out perplexity", "unedited true over false", "fluency", "repetitive", "s/edit"]


def perplexity(value: float) -> str:
    return f"{value:.2f}" if value < 1000 else f"{value:.3g}" if value >= 1e6 else f"{value:,.0f}"


def seconds(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def run_table(folder: Path) -> str:
    dataset = folder.name.rsplit("__", 1)[-1]
    if dataset not in COLUMNS:
        raise SystemExit(f"{folder}: not a study run folder (<label>__counterfact or <label>__zsre)")
    rows = RunFolder(folder).rows()
    if not rows:
        raise SystemExit(f"{folder}: no rows")
    columns = COLUMNS[dataset]
    cpu = any("cpu_seconds_per_edit" in row for row in rows)
    last = [*FORGETTING, *(["CPU s/edit"] if cpu else [])]
    lines = ["| " + " | ".join([*HEADER, *(header for header, _ in columns), *last]) + " |"]
    lines.append("|" + "---|" * (len(HEADER) + len(columns) + len(last)))
    for row in rows:
        forgetting = [perplexity(row["heldout_perplexity"]), f"{row['unedited_true_over_false']:.2f}",
                      f"{row['generation_fluency']:.3f}", f"{row['repetitive_generations']:.2f}"]
        if row["T"] == 0:
            cells = ["-"] * (len(HEADER) - 1 + len(columns)) + forgetting + ["-"] * (1 + cpu)
        else:
            triple = [row[key] for key in TOKEN_TRIPLE]
            cells = [f"{value:.3f}" for value in (*triple, sum(triple) / 3, *(row[key] for _, key in columns))]
            cells += forgetting + [seconds(row["seconds_per_edit"])]
            cells += [seconds(row["cpu_seconds_per_edit"]) if "cpu_seconds_per_edit" in row else "-"] * cpu
        lines.append(f"| {row['T']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder <results_dir>/<label>__<dataset> holding rows.jsonl")
    print(run_table(parser.parse_args().run))


if __name__ == "__main__":
    main()
