"""Markdown tables of MEND training runs: each run's validation curve and its evaluation results.

    .venv/bin/python benchmarks/mend/summarise_runs.py outputs/look_B_quick outputs/look_C_input_kl

A run folder is a `serac-train` output_dir (`training/validation.jsonl`), optionally with
evaluation folders `eval_*/results.json` written by `serac-evaluate ... results_dir=RUN/eval_NAME`.
"""

import argparse
import json
from pathlib import Path

from serac.core.validation_curves import read_validation_curves

CURVE_COLUMNS = ("edit_success", "rephrase_success", "drawdown", "locality_token", "loss_locality", "loss")
RESULT_COLUMNS = (
    "edit_success", "rephrase_success", "edit_token_accuracy", "rephrase_token_accuracy",
    "locality_token", "drawdown", "efficacy_score", "neighborhood_score",
)
COUNTERFACT_ONLY = ("efficacy_score", "neighborhood_score")  # zsRE's locality prompts are unrelated NQ questions


def curve_table(run: Path) -> str:
    rows = read_validation_curves(run / "training" / "validation.jsonl")
    lines = [
        "| step | training time (min) | " + " | ".join(CURVE_COLUMNS) + " | α (mean, min, max) |",
        "|---" * (len(CURVE_COLUMNS) + 3) + "|",
    ]
    for row in rows:
        alphas = [value for name, value in row.items() if name.startswith("alpha/")]
        alpha = f"{sum(alphas) / len(alphas):.2e}, {min(alphas):.2e}, {max(alphas):.2e}" if alphas else "-"
        values = " | ".join(f"{row[name]:.3f}" if name in row else "-" for name in CURVE_COLUMNS)
        lines.append(f"| {row['step']} | {row['elapsed_seconds'] / 60:.1f} | {values} | {alpha} |")
    return "\n".join(lines)


def results_table(run: Path) -> str:
    lines = ["| evaluation | protocol | k | edits | " + " | ".join(RESULT_COLUMNS) + " |", "|---" * (len(RESULT_COLUMNS) + 4) + "|"]
    for path in sorted(run.glob("eval_*/results.json")):
        results = json.loads(path.read_text())
        shown = [name for name in RESULT_COLUMNS
                 if name not in COUNTERFACT_ONLY or results["metadata"]["dataset"].startswith("counterfact")]
        for row in results["rows"]:
            values = " | ".join(f"{row[name]:.3f}" if name in row and name in shown else "-" for name in RESULT_COLUMNS)
            k = row.get("edits_per_step", row.get("edits"))
            lines.append(f"| {path.parent.name} | {row['protocol']} | {k} | {row['edits']} | {values} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    for run in parser.parse_args().runs:
        print(f"### {run.name}\n\n{curve_table(run)}\n\n{results_table(run)}\n")


if __name__ == "__main__":
    main()
