"""The validation curves of a training run, kept in its folder as the run goes.

`validation.jsonl` holds one JSON object per validation: the step, the epoch, the wall-clock
time it was written (`time`, UTC ISO 8601), the training time spent so far (`elapsed_seconds`,
summed over resumed sessions) and every validation metric. `validation.png` plots each metric
against the step (metrics named `group/member` together), redrawn after every validation
when asked for.
"""

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CURVES_FILE = "validation.jsonl"
PLOT_FILE = "validation.png"
_BOOKKEEPING = ("step", "epoch", "time", "elapsed_seconds")
_PANELS_PER_ROW = 4


class ValidationCurves:
    """Appends validations to `output_dir/validation.jsonl`; on resume, rows after the
    checkpoint's step (written by the session that stopped) are dropped, since the resumed run
    validates those steps again."""

    def __init__(self, output_dir: Path, resumed_step: int, plot: bool):
        self.path = Path(output_dir) / CURVES_FILE
        self.plot_path = Path(output_dir) / PLOT_FILE
        self.plot = plot
        self.rows = [row for row in read_validation_curves(self.path) if row["step"] <= resumed_step]
        staging = self.path.with_suffix(".jsonl.tmp")
        staging.write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        os.replace(staging, self.path)

    def write(self, step: int, epoch: int, elapsed_seconds: float, metrics: dict[str, float]) -> None:
        row = {
            "step": step,
            "epoch": epoch,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "elapsed_seconds": round(elapsed_seconds, 1),
        } | metrics
        with open(self.path, "a") as file:
            file.write(json.dumps(row) + "\n")
        self.rows.append(row)
        if self.plot:
            plot_validation_curves(self.rows, self.plot_path)


def read_validation_curves(path: str | Path) -> list[dict]:
    """The rows of a `validation.jsonl` (none if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_validation_curves(rows: list[dict], path: str | Path) -> None:
    """One panel per metric against the training step, written atomically to `path` (PNG).

    Metrics named `group/member` (e.g. `alpha/<layer>`, one per edited layer) share a panel.
    """
    names = sorted({name for row in rows for name in row if name not in _BOOKKEEPING})
    panels: dict[str, list[str]] = {}
    for name in names:
        panels.setdefault(name.split("/")[0], []).append(name)
    if not panels:
        return
    columns = min(_PANELS_PER_ROW, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4 * columns, 2.6 * lines), layout="constrained")
    FigureCanvasAgg(figure)
    for index, (title, members) in enumerate(panels.items()):
        axes = figure.add_subplot(lines, columns, index + 1)
        for name in members:
            points = [(row["step"], row[name]) for row in rows if isinstance(row.get(name), (int, float))]
            axes.plot([step for step, _ in points], [value for _, value in points], marker=".", label=name.removeprefix(title + "/"))
        if len(members) > 1:
            axes.legend(fontsize=5)
        axes.set_title(title, fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    figure.supxlabel("training step", fontsize=9)
    path = Path(path)
    staging = path.with_name(path.name + ".tmp")
    with open(staging, "wb") as file:
        figure.savefig(file, format="png", dpi=90)
    os.replace(staging, path)
