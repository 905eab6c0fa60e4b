"""The lifelong study's report: `study.md` (one table per dataset, columns grouped by the
definition they follow, a collapse line per editor) and one PNG of curves per dataset.

It is rebuilt from the run folders' rows after every checkpoint, so an interrupted study
always has a report of what it measured.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

from serac.comparison import plot_sequential
from serac.core.forgetting import CollapseThresholds, collapse_point, collapse_reasons
from serac.core.results import markdown_table
from serac.study_run_folder import ROWS_FILE, RunFolder
from serac.study_summary_plot import plot_summary

REPORT_FILE = "study.md"


@dataclass(frozen=True)
class Definition:
    """A family of metric definitions: its name in the tables, what it follows, and its columns (row key -> label)."""

    name: str
    follows: str
    columns: dict[str, str]


DEFINITIONS = (
    Definition(
        "ours (strict)",
        "exact match: an edit or rephrase succeeds when every target token is the argmax; drawdown is the "
        "share of out-of-scope prompts whose argmax changed at any position (SERAC, Mitchell et al. 2022); "
        "where a later edit rewrote an edit's fact (zsRE dev: 116 of 537), no editor can give both targets, so "
        "edit success against the latest target of each edit's fact is shown beside it, with the share superseded",
        {
            "edit_success": "edit success",
            "edit_success_latest": "edit success, latest target",
            "superseded": "superseded",
            "rephrase_success": "rephrase success",
            "drawdown": "drawdown",
        },
    ),
    Definition(
        "EasyEdit/KnowEdit (token)",
        "share of target tokens that are the argmax (reliability, generalization) or unchanged (locality), "
        "teacher forced (EasyEdit, Wang et al. 2024; KnowEdit, Zhang et al. 2024)",
        {"edit_token_accuracy": "reliability", "rephrase_token_accuracy": "generalization", "locality_token": "locality"},
    ),
    Definition(
        "CounterFact (ROME/MEMIT)",
        "share of prompts where the new target is more probable than the true object (efficacy on the edit "
        "prompt, paraphrase on rephrases), and the true object over the new target on neighbours (neighbourhood) "
        "(ROME, Meng et al. 2022a; MEMIT, Meng et al. 2022b)",
        {"efficacy_score": "efficacy", "paraphrase_score": "paraphrase", "neighborhood_score": "neighbourhood"},
    ),
    Definition(
        "answer locality",
        "the model's own generated answers to the out-of-scope prompts, token F1 against the gold answers, "
        "before and after the edits (SQuAD-style F1, as EasyEdit's locality on generated answers)",
        {"locality_answer_f1_before": "F1 before", "locality_answer_f1_after": "F1 after"},
    ),
    Definition(
        "forgetting",
        "inputs no edit touches (`serac.core.forgetting`): held-out text perplexity (Yang et al. 2024), "
        "CounterFact's true-over-false on unedited facts, ROME's generation fluency (n-gram entropy), and the "
        "share of generations stuck repeating a trigram",
        {
            "heldout_perplexity": "held-out perplexity",
            "unedited_true_over_false": "unedited true over false",
            "generation_fluency": "fluency",
            "repetitive_generations": "repetitive share",
        },
    ),
)
COSTS = {"seconds_per_edit": "s/edit", "cpu_seconds_per_edit": "CPU s/edit", "wall_seconds": "wall s"}
TOKEN_TRIPLE = DEFINITIONS[1].columns  # reliability, generalization, locality: the summary the lifelong papers average
FORGETTING_FROM_UNEDITED = {key: label for key, label in DEFINITIONS[-1].columns.items() if key != "repetitive_generations"}


@dataclass
class DatasetRuns:
    """One dataset of the study: its name, the run folder of each editor label, notes for the report."""

    name: str
    runs: dict[str, RunFolder]
    notes: list[str] = field(default_factory=list)


def runs_in(folder: Path, datasets: list[str]) -> list[DatasetRuns]:
    """The run folders `<label>__<dataset>` already in `folder`, one `DatasetRuns` per dataset of
    `datasets` that has any (labels in name order): what a report rebuilt from saved rows shows."""
    found = {}
    for path in sorted(folder.glob("*__*")):
        label, _, dataset = path.name.rpartition("__")
        if path.is_dir() and (path / ROWS_FILE).exists():
            found.setdefault(dataset, {})[label] = RunFolder(path)
    return [DatasetRuns(dataset, found[dataset]) for dataset in datasets if dataset in found]


def write_report(folder: Path, datasets: list[DatasetRuns], thresholds: CollapseThresholds) -> Path:
    """Write `study.md`, `<dataset>.png` and `<dataset>_summary.png` into `folder` from the rows measured so far."""
    sections = [_dataset_section(folder, dataset, thresholds) for dataset in datasets]
    definitions = "".join(f"- **{definition.name}**: {definition.follows}.\n" for definition in DEFINITIONS)
    report = (
        "# Lifelong editing study\n\n"
        "Edits are made one after another (or in the batches an editor's label says) and never undone; "
        "at each checkpoint T the metrics are measured on all T edits made so far. Columns are named "
        "`<definition> · <metric>`; the definitions are:\n\n"
        f"{definitions}- **cost**: s/edit is the editing wall time per edit (measurement excluded); CPU s/edit "
        "the process's CPU time over the same edits, all threads (unlike wall time, not raised by other jobs "
        "on the machine or by a pause; absent for runs begun before it was recorded); wall s the run's time "
        "so far, measurements included.\n\n"
        f"The collapse point is the first T at which {_thresholds_text(thresholds)}.\n"
        + "".join(sections)
    )
    file = folder / REPORT_FILE
    file.write_text(report)
    return file


def _dataset_section(folder: Path, dataset: DatasetRuns, thresholds: CollapseThresholds) -> str:
    measured = {label: run.rows() for label, run in dataset.runs.items()}  # each rows file read once
    rows = [{"editor": label, **row} for label, label_rows in measured.items() for row in label_rows]
    columns = [(key, f"{definition.name} · {label}") for definition in DEFINITIONS for key, label in definition.columns.items()]
    columns += list(COSTS.items())
    shown = [(key, label) for key, label in columns if any(key in row for row in rows)]
    table_rows = [{"editor": row["editor"], "T": row["T"], **{label: row[key] for key, label in shown if key in row}} for row in rows]
    table = markdown_table(table_rows, ["editor", "T", *(label for _, label in shown)]) if rows else "No rows yet."
    plot = plot_sequential(
        [{**row, "protocol": "sequential"} for row in rows],
        folder / f"{dataset.name}.png",
        [key for key, _ in shown],
        dict(shown),
        unedited_levels=list(DEFINITIONS[-1].columns),  # the forgetting measures, against the unedited model
    )
    collapses = {label: _collapse(label_rows, thresholds) for label, label_rows in measured.items()}
    lines = [
        f"- **{label}**: {_editor_summary(measured[label], run.finished(), thresholds, collapses[label])}"
        for label, run in dataset.runs.items()
    ]
    notes = "".join(f"- {note}\n" for note in dataset.notes)
    figure = f"\n![{dataset.name} curves]({plot.name})\n" if plot else ""
    summary_plot = plot_summary(measured, folder / f"{dataset.name}_summary.png", thresholds, tuple(TOKEN_TRIPLE), collapses)
    summary_figure = f"![{dataset.name}: edits kept and forgetting]({summary_plot.name})\n\n" if summary_plot else ""
    definitions = ", ".join(definition.name for definition in DEFINITIONS if any(key in dict(shown) for key in definition.columns))
    summary = _last_checkpoint_table(measured, collapses)
    return (
        f"\n## {dataset.name}\n\n{notes}\n{summary}{summary_figure}Definitions shown: {definitions}.\n\n{table}\n\n"
        + "\n".join(lines) + "\n" + figure
    )


def _last_checkpoint_table(measured_runs: dict[str, list[dict]], collapses: dict[str, int | None]) -> str:
    """One row per editor at the last T it reached: the token-level triple and its mean (the lifelong
    papers' summary), CounterFact's efficacy and neighbourhood, the forgetting measures from T = 0, the
    collapse point and the cost."""
    rows = []
    for label, measured in measured_runs.items():
        if len(measured) < 2 or measured[0]["T"] != 0:
            continue
        unedited, last = measured[0], measured[-1]
        triple = [last.get(key, math.nan) for key in TOKEN_TRIPLE]
        collapse = collapses[label]
        rows.append({
            "editor": label,
            "T": last["T"],
            **{TOKEN_TRIPLE[key]: value for key, value in zip(TOKEN_TRIPLE, triple)},
            "mean of the three": sum(triple) / len(triple),
            "efficacy": last.get("efficacy_score", math.nan),
            **({"neighbourhood": last["neighborhood_score"]} if "neighborhood_score" in last else {}),
            **{label_: f"{unedited[key]:.3g} → {last[key]:.3g}" for key, label_ in FORGETTING_FROM_UNEDITED.items()
               if key in unedited and key in last},
            "collapse at T": "none" if collapse is None else collapse,
            "s/edit": last.get("seconds_per_edit", math.nan),
            **({"CPU s/edit": last["cpu_seconds_per_edit"]} if "cpu_seconds_per_edit" in last else {}),
        })
    if not rows:
        return ""
    return (
        "At the last checkpoint each editor reached (token-level reliability, generalization and locality as "
        "EasyEdit/KnowEdit; forgetting measures from the unedited model to that T):\n\n"
        + markdown_table(rows) + "\n\n"
    )


def _forgetting_rows(measured: list[dict]) -> list[tuple[int, dict[str, float]]]:
    """(T, forgetting measures) of every row that has them all."""
    keys = DEFINITIONS[-1].columns
    return [(row["T"], {key: row[key] for key in keys}) for row in measured if all(key in row for key in keys)]


def _collapse(measured: list[dict], thresholds: CollapseThresholds) -> int | None:
    """The run's collapse point so far, or None (also when it has no usable unedited row)."""
    rows = _forgetting_rows(measured)
    if not rows or rows[0][0] != 0 or not all(math.isfinite(value) for value in rows[0][1].values()):
        return None
    return collapse_point(rows, thresholds)


def _editor_summary(measured: list[dict], finished: dict | None, thresholds: CollapseThresholds, collapse: int | None) -> str:
    """Its collapse point (`_collapse`) and reasons, or how far it went without one; and whether it stopped early."""
    rows = _forgetting_rows(measured)
    if not rows or rows[0][0] != 0:
        return "no rows yet"
    last_t = rows[-1][0]
    if collapse is None:
        summary = f"no collapse up to T={last_t}"
    else:
        reasons = collapse_reasons(rows[0][1], dict(rows)[collapse], thresholds)
        summary = f"collapse at T={collapse} ({', '.join(reasons)})"
    if finished is None:
        summary += f"; running (T={last_t} so far)"
    elif finished["stopped"]:
        summary += f"; stopped at T={finished['T']} ({finished['stopped']})"
    return summary


def _thresholds_text(thresholds: CollapseThresholds) -> str:
    return (
        f"held-out perplexity is at least {thresholds.perplexity_ratio:g}× the unedited one, fluency falls below "
        f"{thresholds.fluency_ratio:g}× the unedited one, or the share of repetitive generations rises by at least "
        f"{thresholds.repetition_rise:g} over the unedited share (`serac.core.forgetting.CollapseThresholds`)"
    )

