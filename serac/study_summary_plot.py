"""The lifelong study's summary figure per dataset: what the edits keep (the token-level mean of
reliability, generalization and locality, the lifelong papers' summary) beside what the model
forgets (held-out perplexity, fluency and looping generations, each against the unedited model
with its collapse threshold drawn), one line per editor and its collapse point circled.

The full grid of every metric is `<dataset>.png` (`comparison.plot_sequential`); this one is small
enough to read in the README.
"""

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from serac.core.forgetting import CollapseThresholds

MARKERS = "os^Dvp*"


def _token_mean(row: dict, keys: tuple[str, ...]) -> float | None:
    values = [row.get(key) for key in keys]
    return sum(values) / len(values) if all(isinstance(value, (int, float)) for value in values) else None


PANELS = (  # title, the value of a row given the run's unedited row, the collapse threshold's attribute
    ("edits kept: mean of reliability, generalization, locality (token)", None),
    ("held-out perplexity / unedited", "perplexity_ratio"),
    ("fluency / unedited", "fluency_ratio"),
    ("looping generations: share − unedited share", "repetition_rise"),
)


def summary_series(measured: dict[str, list[dict]], token_keys: tuple[str, ...]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Panel title -> editor label -> (T, value) points, from rows whose first is the unedited
    model (T = 0); a value a row cannot give (a missing metric, an infinite perplexity) is left out."""
    values = (
        lambda row, first: _token_mean(row, token_keys),
        lambda row, first: _ratio(row, first, "heldout_perplexity"),
        lambda row, first: _ratio(row, first, "generation_fluency"),
        lambda row, first: _difference(row, first, "repetitive_generations"),
    )
    usable = {label: rows for label, rows in measured.items() if len(rows) > 1 and rows[0]["T"] == 0}
    return {
        title: {
            label: points
            for label, rows in usable.items()
            if (points := [(row["T"], value) for row in rows[1:] if (value := value_of(row, rows[0])) is not None])
        }
        for (title, _), value_of in zip(PANELS, values)
    }


def plot_summary(
    measured: dict[str, list[dict]],
    file: Path,
    thresholds: CollapseThresholds,
    token_keys: tuple[str, ...],
    collapses: dict[str, int | None],
) -> Path | None:
    """The four panels of `summary_series` against T (log scale), thresholds dotted, collapse points
    circled; None when no editor has a measured T > 0 beside its unedited row."""
    series = summary_series(measured, token_keys)
    if not any(series.values()):
        return None
    labels = list(dict.fromkeys(label for lines in series.values() for label in lines))
    figure = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(figure)
    grid = list(figure.subplots(2, 2).flat)
    for axes, (title, threshold_name) in zip(grid, PANELS):
        for label, points in series[title].items():
            line, = axes.plot(*zip(*points), marker=MARKERS[labels.index(label) % len(MARKERS)], label=label)
            at = dict(points).get(collapses.get(label))
            if threshold_name and at is not None:
                axes.plot([collapses[label]], [at], marker="o", markersize=16, fillstyle="none", color=line.get_color(), linestyle="none")
        if threshold_name:
            axes.axhline(getattr(thresholds, threshold_name), color="red", linestyle=":", label="collapse threshold")
        axes.set(title=title, xlabel="edits T", xscale="log", yscale="log" if threshold_name == "perplexity_ratio" else "linear")
        axes.grid(True, alpha=0.3)
    legend = {label: handle for axes in grid for handle, label in zip(*axes.get_legend_handles_labels())}
    figure.legend(legend.values(), legend.keys(), loc="outside right upper")
    figure.suptitle("What the edits keep and what the model forgets (a circle: the editor's collapse point)")
    figure.savefig(file, dpi=100)
    return file


def _ratio(row: dict, first: dict, key: str) -> float | None:
    if key not in row or not first.get(key) or not math.isfinite(row[key]):
        return None
    return row[key] / first[key]


def _difference(row: dict, first: dict, key: str) -> float | None:
    return row[key] - first[key] if key in row and key in first else None
