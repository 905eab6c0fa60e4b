"""`serac-study`: lifelong (sequential) editing up to T = 1,000 edits per editor and dataset,
with the forgetting measures and the collapse point; resumable.

    serac-study +editors.serac=outputs/serac/editor +editors.mend=outputs/mend/editor

Each editor (saved folders `editors.<label>`, or labels in `from_config` built from
`algs.<label>`, as in `serac-compare`) edits the records of each dataset in order, one
`add_edit` at a time, or `edits_per_step.<label>` records per `add_edits` call (MEMIT in
batches of 100). At each checkpoint T the editor is measured on the T edits so far
(`serac.core.evaluation.measure`) and on inputs no edit touches (`ForgettingProbe`); the row
is written at once, the editor's state saved, and the report rebuilt (`serac.study_report`).
Running the same command again with the same `results_dir` resumes every unfinished run at
its last checkpoint (`serac.study_run_folder`).

With `report_only=true` it edits nothing: `study.md` and the curves are rebuilt from the rows
already in `results_dir` (for instance the committed `benchmarks/lifelong/results`).
CounterFact edits come from the start of val, zsRE edits from dev (537 records: its runs end
there); records about a fact of the forgetting probe are skipped, and the report says how many.
"""

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from serac.cli import CONFIG_DIR, user_errors
from serac.comparison import built_from, editor_builders
from serac.core.data import load_records
from serac.core.editor import Editor, configure_editor
from serac.core.evaluation import Unedited, edit_step, measure
from serac.core.forgetting import CollapseThresholds, ForgettingProbe, ForgettingSettings
from serac.core.records import EditRecord
from serac.core.registry import load_working_copy
from serac.core.setting_checks import check_bool, check_choice, check_int, check_real
from serac.study_report import REPORT_FILE, DatasetRuns, runs_in, write_report
from serac.study_run_folder import RunFolder

log = logging.getLogger(__name__)

STUDY_SPLITS = {"counterfact": "val", "zsre": "dev"}  # zsRE train is what SERAC and MEND were trained on
TIME_BUDGET = "time budget"
clock = time.perf_counter  # wall time of the runs (a test replaces it)
cpu_clock = time.process_time  # CPU time of this process, all threads: what an edit costs, whatever else runs beside it


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """The study's settings from the composed config (`configs/study.yaml`), checked."""

    datasets: tuple[str, ...]
    checkpoints: tuple[int, ...]
    max_edits: int
    edits_per_step: dict[str, int]
    max_seconds_per_editor: float | None
    state_every_seconds: float | None  # the editor's state saved this often between checkpoints (no row)
    answer_locality: bool
    forgetting: ForgettingSettings
    collapse: CollapseThresholds
    configure: dict[str, dict] = dataclasses.field(default_factory=dict)  # label -> settings changed after loading

    @classmethod
    def from_config(cls, config: dict, labels: Sequence[str]) -> "StudySettings":
        datasets = _list(config.get("datasets"), "datasets")
        for dataset in datasets:
            check_choice(dataset, "each of datasets", STUDY_SPLITS)
        checkpoints = tuple(check_int(t, "each of checkpoints", 1) for t in _list(config.get("checkpoints"), "checkpoints"))
        steps = config.get("edits_per_step") or {}
        if not isinstance(steps, dict):
            raise ValueError(f"edits_per_step must map editor labels to edits per step, got {steps!r}")
        known = {*labels, *(config.get("algs") or {})}  # a configured alg not in from_config this time is no typo
        for label, step in steps.items():
            if label not in known:
                raise ValueError(f"edits_per_step names {label!r}, which is neither an editor of this study nor in algs")
            check_int(step, f"edits_per_step.{label}", 1)
        configure = config.get("configure") or {}
        if not isinstance(configure, dict) or not all(isinstance(changes, dict) for changes in configure.values()):
            raise ValueError(f"configure must map editor labels to settings, e.g. configure.serac.subject_scope=true; got {configure!r}")
        for label in configure:
            if label not in labels:
                raise ValueError(f"configure names {label!r}, which is no editor of this study")
        budget, every = config.get("max_seconds_per_editor"), config.get("state_every_seconds")
        return cls(
            datasets=tuple(datasets),
            checkpoints=checkpoints,
            max_edits=check_int(config.get("max_edits"), "max_edits", 1),
            edits_per_step=dict(steps),
            max_seconds_per_editor=None if budget is None else check_real(budget, "max_seconds_per_editor", 1e-3, 1e9),
            state_every_seconds=None if every is None else check_real(every, "state_every_seconds", 1.0, 1e9),
            answer_locality=check_bool(config.get("answer_locality", True), "answer_locality"),
            forgetting=_settings(ForgettingSettings, "forgetting", {**(config.get("forgetting") or {}), "data_dir": config.get("data_dir")}),
            collapse=_settings(CollapseThresholds, "collapse", config.get("collapse") or {}),
            configure={label: dict(changes) for label, changes in configure.items() if changes},
        )


def _list(value, what: str) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{what} must be a non-empty list, got {value!r}")
    return list(value)


def _settings(kind: type, what: str, values: dict):
    known = {field.name for field in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{what} has no setting {', '.join(unknown)}; known: {', '.join(sorted(known - {'data_dir'}))}")
    return kind(**values)


def measured_at(checkpoints: Sequence[int], records: int, step: int) -> list[int]:
    """The T at which a run is measured: the checkpoints below the number of records that fall on
    a step boundary (a batch editor holds multiples of its step), and the last record."""
    return sorted({t for t in checkpoints if t < records and t % step == 0} | {records})


def study_records(dataset: str, probe: ForgettingProbe, settings: StudySettings, data_dir) -> tuple[list[EditRecord], list[str]]:
    """The first `max_edits` records of the dataset's study split that are not about a probe fact; notes for the report."""
    split = STUDY_SPLITS[dataset]
    available = load_records(dataset, split, data_dir)
    usable = [record for record in available if not probe.touches(record)]
    records = usable[: settings.max_edits]
    if not records:
        raise ValueError(f"{dataset}/{split} holds no record that is not about a fact of the forgetting probe")
    probe.check_untouched(records)
    notes = [f"{dataset}/{split}: edits are its first {len(records)} records not about a fact of the forgetting probe."]
    skipped = sum(probe.touches(record) for record in available[: available.index(records[-1]) + 1]) if records else 0
    if skipped:
        notes.append(f"{skipped} record(s) among them skipped: about a fact of the forgetting probe (same prompt or subject).")
    if len(records) < min(settings.max_edits, max(settings.checkpoints)):
        notes.append(f"{dataset}/{split} holds only {len(records)} usable records: its runs stop at T = {len(records)}.")
    return records, notes


def _digest(values) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


def run_settings(label: str, config: dict, dataset: str, records: list[EditRecord], plan: list[int], step: int,
                 settings: StudySettings, probe: ForgettingProbe) -> dict:
    """What a run's rows depend on: a re-run that differs in any of them is refused."""
    saved = (config.get("editors") or {}).get(label)
    forgetting = {key: value for key, value in dataclasses.asdict(settings.forgetting).items() if key != "data_dir"}
    editor = {"saved_editor": str(saved)} if saved else {"alg": _without_value_cache(config["algs"][label]), "model": config.get("model")}
    if label in settings.configure:  # only then: the runs made before `configure` existed keep their settings
        editor["configure"] = settings.configure[label]
    return {
        "editor": editor,
        "dataset": f"{dataset}/{STUDY_SPLITS[dataset]}",
        "records": {"count": len(records), "digest": _digest([[r.source, r.prompt, r.target, r.subject] for r in records])},
        "checkpoints": plan,
        "edits_per_step": step,
        "answer_locality": settings.answer_locality,
        "forgetting": forgetting,
        "probe": _digest([list(probe.heldout_texts), [fact.prompt for fact in probe.facts]]),
    }


def _value_cache_section(alg: dict) -> dict | None:
    """The settings section of an alg that keeps its values on disk (MEMIT's `value_cache`), else None."""
    section = alg.get(alg.get("name"))
    return section if isinstance(section, dict) and "value_cache" in section else None


def _without_value_cache(alg: dict) -> dict:
    """The alg settings a run's rows depend on: where MEMIT keeps its values changes no figure."""
    section = _value_cache_section(alg)
    if section is None:
        return alg
    return {**alg, alg["name"]: {key: value for key, value in section.items() if key != "value_cache"}}


def _built_in_run(config: dict, label: str, run: RunFolder) -> Callable[[], Editor]:
    """The builder of a from-config editor for one run. MEMIT keeps each edit's z in the run folder
    (unless `value_cache` names another): a batch of 100 is hours of value optimisation on a CPU,
    and without the values on disk an interruption mid-batch would start the batch over."""
    alg = config["algs"][label]
    section = _value_cache_section(alg)
    if section is not None and section["value_cache"] is None:
        alg = {**alg, alg["name"]: {**section, "value_cache": str(run.values)}}
    return built_from(config, alg)


def reused_seconds(editor: Editor) -> tuple[float, float | None]:
    """Wall and CPU seconds of the work the editor's last step read back from its own cache instead of
    doing it (MEMIT's value cache, when a batch cut short by a kill is made again), as that work cost
    when it was first done: the step is then counted as if it had not been interrupted. CPU is None
    when a cached part was stored without it (wall: counted as 0, with a warning)."""
    costs = getattr(editor, "reused_value_costs", ())
    wall, cpu = [cost.seconds for cost in costs], [cost.cpu_seconds for cost in costs]
    if None in wall:
        log.warning("%d of the values read back from the cache have no recorded time: s/edit undercounts them", wall.count(None))
    return sum(seconds or 0.0 for seconds in wall), None if None in cpu else sum(cpu)


def run_editor(
    build: Callable[[], Editor],
    run: RunFolder,
    records: list[EditRecord],
    plan: list[int],
    step: int,
    settings: StudySettings,
    probe: ForgettingProbe,
    device=None,
    on_row: Callable[[], None] = lambda: None,
    changes: dict | None = None,
) -> None:
    """One (editor, dataset) run from where its folder left off to the end of `plan`, or until
    the time budget is spent (it then stops at its last checkpoint). `changes`: settings given
    to the editor's `configure` once it is built or loaded (`configure.<label>`)."""
    with run.exclusive():
        started = clock()
        editor = build()
        try:
            configure_editor(editor, changes)
            editor.reset()  # a saved editor may hold edits
            def measure_unedited() -> Unedited:
                # Scoring every record's unrelated prompts unedited takes minutes on a CPU, before the bar starts.
                log.info("%s: measuring the unedited model on the unrelated prompts of %d records", run.path.name, len(records))
                return Unedited.of(editor, records, settings.answer_locality)

            before = run.unedited(measure_unedited)
            rows = run.rows()
            if not rows:
                run.append_row({"T": 0, **probe.measure(editor), "wall_seconds": clock() - started})
                on_row()
            progress = run.saved_progress() or {"T": 0, "edit_seconds": 0.0, "edit_cpu_seconds": 0.0, "wall_seconds": 0.0}
            if progress["T"]:
                editor.close()
                editor = run.load_state(device)
                configure_editor(editor, changes)
                log.info("%s: resuming at T=%d", run.path.name, progress["T"])
            done, edit_seconds, earlier_wall = progress["T"], progress["edit_seconds"], progress["wall_seconds"]
            # None: a state saved before CPU time was recorded; its run keeps wall time only rather than mix the two.
            edit_cpu_seconds = progress.get("edit_cpu_seconds")

            def measured_row(t: int) -> dict:
                row = measure(editor, records[:t], before)
                wall = earlier_wall + clock() - started
                cpu = {} if edit_cpu_seconds is None else {"cpu_seconds_per_edit": edit_cpu_seconds / t}
                return {"T": t, **row, **probe.measure(editor), "seconds_per_edit": edit_seconds / t, **cpu, "wall_seconds": wall}

            def progress_at(t: int, wall: float) -> dict:
                return {"T": t, "edit_seconds": edit_seconds, "edit_cpu_seconds": edit_cpu_seconds, "wall_seconds": wall}

            if done in plan and run.rows()[-1]["T"] != done:  # the crash fell between saving the state and writing its row
                run.append_row(measured_row(done))
            saved_at = clock()
            with tqdm(total=len(records), initial=done, desc=run.path.name, unit="edit") as bar:
                for checkpoint in [t for t in plan if t > done]:
                    while done < checkpoint:
                        batch = records[done : min(done + step, checkpoint)]
                        step_started, cpu_started = clock(), cpu_clock()
                        edit_step(editor, batch)
                        reused, reused_cpu = reused_seconds(editor)
                        edit_seconds += clock() - step_started + reused
                        if edit_cpu_seconds is not None:
                            edit_cpu_seconds = None if reused_cpu is None else edit_cpu_seconds + cpu_clock() - cpu_started + reused_cpu
                        done += len(batch)
                        bar.update(len(batch))
                        if done < checkpoint and settings.state_every_seconds and clock() - saved_at > settings.state_every_seconds:
                            # Between checkpoints hours apart (ROME: 500 edits at ~30 s): a kill loses minutes, not hours.
                            wall = earlier_wall + clock() - started
                            run.save_state(editor, progress_at(done, wall))
                            saved_at = clock()
                        if settings.max_seconds_per_editor and earlier_wall + clock() - started > settings.max_seconds_per_editor:
                            last = run.rows()[-1]["T"]
                            log.warning("%s: time budget spent at T=%d; stopping at T=%d, its last checkpoint", run.path.name, done, last)
                            run.finish(last, TIME_BUDGET)
                            return
                    row = measured_row(checkpoint)
                    run.save_state(editor, progress_at(checkpoint, row["wall_seconds"]))
                    saved_at = clock()
                    run.append_row(row)
                    on_row()
            run.finish(done, None)
        finally:
            editor.close()
            run.remove_working_copy()


@dataclasses.dataclass
class Study:
    """A checked study, ready to run: every run's folder, records and checkpoints."""

    folder: Path
    settings: StudySettings
    probe: ForgettingProbe
    datasets: list[DatasetRuns]
    runs: list[tuple[Callable[[], Editor], RunFolder, list[EditRecord], list[int], int, dict | None]]
    device: str | None

    def report(self) -> Path:
        return write_report(self.folder, self.datasets, self.settings.collapse)

    def run(self) -> Path:
        """Every unfinished run, the report rebuilt after each row; returns the results folder."""
        for build, run, records, plan, step, changes in self.runs:
            if run.finished():
                log.info("%s is finished; skipped", run.path.name)
                continue
            run_editor(build, run, records, plan, step, self.settings, self.probe, self.device, self.report, changes)
        self.report()
        return self.folder


def plan_study(config: dict) -> Study:
    """Check the whole config, data and run folders (refusing changed settings) before any editing."""
    builders = editor_builders(config)
    settings = StudySettings.from_config(config, list(builders))
    folder = Path(config["results_dir"])
    probe = ForgettingProbe.build(settings.forgetting)
    device = config.get("device")
    datasets, runs = [], []
    for dataset in settings.datasets:
        records, notes = study_records(dataset, probe, settings, config.get("data_dir"))
        folders = {label: RunFolder(folder / f"{label}__{dataset}") for label in builders}
        for label, run in folders.items():
            step = settings.edits_per_step.get(label, 1)
            plan = measured_at(settings.checkpoints, len(records), step)
            run.check_settings(run_settings(label, config, dataset, records, plan, step, settings, probe))
            saved = (config.get("editors") or {}).get(label)
            # A saved editor is loaded from a copy: the run must not write into the user's folder.
            build = partial(load_working_copy, saved, run.working_copy, device) if saved else _built_in_run(config, label, run)
            runs.append((build, run, records, plan, step, settings.configure.get(label)))
        datasets.append(DatasetRuns(dataset, folders, notes))
    return Study(folder, settings, probe, datasets, runs, device)


def run_study(config: dict) -> Path:
    """The whole study on a plain composed config; returns the results folder (with `study.md`)."""
    return plan_study(config).run()


def report_saved_rows(config: dict) -> Path:
    """`study.md` and the curves rebuilt from the run folders in `results_dir`, nothing edited."""
    folder = Path(config["results_dir"])
    settings = StudySettings.from_config(config, [])
    datasets = runs_in(folder, list(settings.datasets))
    if not datasets:
        raise ValueError(f"report_only: {folder} holds no run folder (<label>__<dataset>/rows.jsonl) of {list(settings.datasets)}")
    return write_report(folder, datasets, settings.collapse)


@hydra.main(config_path=CONFIG_DIR, config_name="study", version_base="1.3")
def study_main(config: DictConfig) -> None:
    if config.get("report_only"):
        try:
            report = report_saved_rows(OmegaConf.to_container(config, resolve=True))
        except ValueError as error:
            raise SystemExit(f"serac-study: {error}") from None
        print(report.read_text())
        print(json.dumps({"report": str(report)}))
        return
    with user_errors("serac-study"):  # a busy run folder, a saved folder or settings found wrong once loaded
        try:
            study = plan_study(OmegaConf.to_container(config, resolve=True))
        except ValueError as error:  # bad settings or data (DataFormatError too): our message, not a stack trace
            raise SystemExit(f"serac-study: {error}") from None
        folder = study.run()
    print((folder / REPORT_FILE).read_text())
    print(json.dumps({"report": str(folder / REPORT_FILE)}))
