"""`serac-compare`: several editors through the same protocols on one dataset; one table, one plot.

    serac-compare experiment=zsre max_records=100 \
        +editors.serac=outputs/serac/editor +editors.mend=outputs/mend/editor +editors.cache=outputs/cache/editor

Each editor is a saved folder (`editors.<label>`), or built from its alg config `algs.<label>`
when its label is listed in `from_config` (`configs/compare.yaml` composes ft, ft_kl, ft_l and
cache there). Every editor goes through `evaluate` with each protocol; the rows are written
with `write_results` (results.md, results.json) after each editor, so a stopped run keeps what
it measured, and the sequential rows are plotted against the number of edits T
(comparison.png). An editor offering `evaluation_variants` (a calibrated cache: ε*/2, ε*, 2ε*)
is reported once per variant.
"""

import json
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, runtime_checkable

import hydra
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from serac.cli import CONFIG_DIR
from serac.core.data import load_records
from serac.core.editor import Editor
from serac.core.evaluation import PROTOCOLS, EvalConfig, evaluate
from serac.core.records import EditRecord
from serac.core.registry import editor_class, load_working_copy
from serac.core.results import write_results

log = logging.getLogger(__name__)

METRICS = (
    "edit_success", "rephrase_success", "edit_success_latest", "rephrase_success_latest",
    "drawdown", "locality_accuracy_drop", "locality_answer_f1_before", "locality_answer_f1_after",
    "locality_answer_changed", "portability", "seconds_per_edit",
)
PLOT_FILE = "comparison.png"
WORKING_COPIES = "editor_working_copies"  # in the results folder, while saved editors are compared


@runtime_checkable
class HasEvaluationVariants(Protocol):
    """An editor reported at several settings, e.g. a calibrated cache at ε*/2, ε*, 2ε*."""

    def evaluation_variants(self) -> dict[str, dict]:
        """Variant label -> the settings `configure` takes; empty: report the editor as it is."""

    def configure(self, **settings) -> None: ...


@dataclass
class CompareConfig:
    protocols: tuple[str, ...] = ("single", "sequential")
    checkpoints: tuple[int, ...] = (1, 10, 100, 500)  # sequential: T, the edits made when measured (and all)
    batch_size: int = 10  # edits per step in the batch protocol
    max_records: int | None = None
    answer_locality: bool = True  # see EvalConfig

    def __post_init__(self):
        unknown = [protocol for protocol in self.protocols if protocol not in PROTOCOLS]
        if unknown or not self.protocols:
            raise ValueError(f"protocols must be a non-empty list of {PROTOCOLS}, got {list(self.protocols)}")


def compare(
    editors: dict[str, Callable[[], Editor]],
    records: Sequence[EditRecord],
    config: CompareConfig,
    on_editor_done: Callable[[list[dict], dict[str, dict], list[str]], None] | None = None,
) -> tuple[list[dict], dict[str, dict]]:
    """Table rows (editor x protocol x T) and the settings of each editor variant.

    `editors` maps a label to a function building the editor, so only one editor (and its
    model) is in memory at a time; each editor is closed after its runs. `on_editor_done`
    gets the rows, the variant settings and the labels of the editors done so far after each
    editor, so a long comparison that is stopped keeps what it measured.
    """
    rows, variant_settings, done = [], {}, []
    for label, build in editors.items():
        editor = build()
        try:
            variants = editor.evaluation_variants() if isinstance(editor, HasEvaluationVariants) else {}
            for variant, settings in (variants or {"": {}}).items():
                name = f"{label} ({variant})" if variant else label
                if settings:
                    editor.configure(**settings)
                    variant_settings[name] = settings
                for protocol in config.protocols:
                    log.info("evaluating %s, %s protocol", name, protocol)
                    eval_config = EvalConfig(protocol, config.batch_size, tuple(config.checkpoints), config.max_records, config.answer_locality)
                    rows.extend(table_row(name, row) for row in evaluate(editor, records, eval_config))
        finally:
            editor.close()
        done.append(label)
        if on_editor_done:
            on_editor_done(rows, variant_settings, done)
    return rows, variant_settings


def table_row(editor: str, row: dict) -> dict:
    """One row of the table from an `evaluate` row; T is the number of edits held when measured."""
    edits_held = row["edits"] if row["protocol"] == "sequential" else row.get("edits_per_step", 1)
    return {
        "editor": editor,
        "protocol": row["protocol"],
        "T": edits_held,
        **{key: row[key] for key in METRICS if key in row},
    }


def plot_sequential(
    rows: list[dict], file: Path, metrics: Sequence[str] = METRICS[:6], titles: dict[str, str] | None = None,
    unedited_levels: Sequence[str] = (),
) -> Path | None:
    """Each metric against T (log scale), one line per editor, for the sequential rows with T > 0;
    None without any. The metrics in `unedited_levels` also get their T = 0 value (the unedited model,
    which a log axis cannot place) as a dashed level. Three plots a line; `titles` names a metric's plot
    (default: its key)."""
    sequential = [row for row in rows if row["protocol"] == "sequential" and row["T"] > 0]
    if not sequential:
        return None
    unedited = {}
    for row in rows:
        if row["protocol"] == "sequential" and row["T"] == 0:
            unedited = {**row, **unedited}  # the first editor's, where several measured the same base model
    editors = list(dict.fromkeys(row["editor"] for row in sequential))
    lines = math.ceil(len(metrics) / 3)
    figure = Figure(figsize=(15, 4 * lines), layout="constrained")
    FigureCanvasAgg(figure)
    grid = list(figure.subplots(lines, 3, squeeze=False).flat)
    for axes in grid[len(metrics) :]:
        axes.set_visible(False)
    for axes, metric in zip(grid, metrics):
        for number, editor in enumerate(editors):
            points = [(row["T"], row[metric]) for row in sequential if row["editor"] == editor and metric in row]
            if points:  # a marker of its own, so an editor hidden under another's line still shows
                axes.plot(*zip(*points), marker="os^Dvp*"[number % 7], label=editor)
        if metric in unedited_levels and isinstance(unedited.get(metric), (int, float)):
            axes.axhline(unedited[metric], color="gray", linestyle="--", label="unedited (T = 0)")
        axes.set(title=(titles or {}).get(metric, metric), xlabel="edits T", xscale="log")
        axes.grid(True, alpha=0.3)
    legend = {label: handle for axes in figure.axes for handle, label in zip(*axes.get_legend_handles_labels())}
    figure.legend(legend.values(), legend.keys(), loc="outside right upper")
    figure.savefig(file, dpi=100)
    return file


def editor_builders(config: dict) -> dict[str, Callable[[], Editor]]:
    """Label -> builder of each editor: `editors` maps labels to saved folders; `from_config` lists
    labels built from their alg config `algs.<label>`. Names are checked here, so a typo fails
    before any editor runs."""
    saved, built = config.get("editors") or {}, config.get("from_config") or []
    if not saved and not built:
        raise ValueError("no editors to compare: give +editors.<label>=<saved folder> or from_config=[<label>, ...]")
    builders = {}
    for label, path in saved.items():
        if not path:
            raise ValueError(
                f"editors.{label} must be a saved editor folder; to build {label!r} from its alg config, list it in from_config"
            )
        # A working copy: the comparison's edits and resets must not touch the user's folder.
        copy = Path(config["results_dir"]) / WORKING_COPIES / label
        builders[label] = partial(load_working_copy, path, copy, device=config.get("device"))
    for label in built:
        alg = (config.get("algs") or {}).get(label)
        if alg is None:
            raise ValueError(
                f"from_config lists {label!r} but there is no algs.{label}: compose one with +alg@algs.{label}=<alg name>"
            )
        if label in builders:
            raise ValueError(f"{label!r} is both a saved editor (editors.{label}) and in from_config; rename one")
        builders[label] = built_from(config, alg)
    return builders


def built_from(config: dict, alg: dict) -> Callable[[], Editor]:
    """The builder of an editor from its alg config, within the composed `config` (model, device...)."""
    return partial(editor_class(alg["name"]).from_config, {**config, "alg": alg})


def run_comparison(config: dict) -> Path:
    """The whole command on a plain composed config; returns the results folder."""
    experiment = config["experiment"]
    builders = editor_builders(config)
    compare_config = CompareConfig(
        tuple(config["protocols"]),
        tuple(config["checkpoints"]),
        config.get("batch_size", 10),
        config.get("max_records"),
        config.get("answer_locality", True),
    )
    records = load_records(experiment["dataset"], experiment["eval_split"], config.get("data_dir"))
    records = records[: compare_config.max_records] if compare_config.max_records else records
    folder = Path(config["results_dir"])
    dataset = f"{experiment['dataset']}/{experiment['eval_split']}"
    editors = {
        **(config.get("editors") or {}),
        **{label: f"built from algs.{label}" for label in config.get("from_config") or []},
    }

    def write(rows: list[dict], variant_settings: dict[str, dict], done: list[str]) -> None:
        metadata = {
            "dataset": dataset,
            "records": len(records),
            "editors": editors,
            "T": "edits held when measured (single: 1 at a time, then reset)",
            **({"variants": variant_settings} if variant_settings else {}),
            **({} if len(done) == len(builders) else {"incomplete": f"measured so far: {', '.join(done)}"}),
        }
        write_results(rows, folder, f"Editors compared on {dataset}", metadata)
        plot_sequential(rows, folder / PLOT_FILE)

    try:
        compare(builders, records, compare_config, on_editor_done=write)
    finally:
        shutil.rmtree(folder / WORKING_COPIES, ignore_errors=True)
    return folder


@hydra.main(config_path=CONFIG_DIR, config_name="compare", version_base="1.3")
def compare_main(config: DictConfig) -> None:
    folder = run_comparison(OmegaConf.to_container(config, resolve=True))
    print((folder / "results.md").read_text())
    written = {"results": folder / "results.md", "plot": folder / PLOT_FILE}
    print(json.dumps({key: str(file) for key, file in written.items() if file.exists()}))
