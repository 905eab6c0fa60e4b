"""`serac-study` on tiny models and a tiny data folder: rows, report, resume, batches, time budget."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from key_value_fixtures import write_tiny_data
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors import safe_open

from mend.finetune import FTEditor
from serac import lifelong_study
from serac.cache import CacheEditor
from serac.cli import CONFIG_DIR
from serac.core.evaluation import Unedited
from serac.core.language_model import TargetScore
from serac.lifelong_study import measured_at, plan_study, report_saved_rows, run_study
from serac.study_report import REPORT_FILE
from serac.core.saving import FolderInUseError
from serac.study_run_folder import PROGRESS_FILE, ChangedSettingsError, RunFolder

# CounterFact val: five facts to edit, the third about the subject of a probe fact, then the
# three probe facts (the probe takes the last records of val).
EDITS = [
    ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux", "French", "English"),
    ("The Eiffel Tower is located in", "The Eiffel Tower", "Paris", "London"),
    ("The Nile is a river in", "The Nile", "Egypt", "Brazil"),
    ("Hamlet was written by", "Hamlet", "William Shakespeare", "Cairo"),
    ("The capital of France is", "France", "Paris", "Cairo"),
    ("The football club of Paris plays in", "Paris Saint-Germain", "France", "Brazil"),
]
PROBE_FACTS = [
    ("The Nile flows through", "The Nile", "Cairo", "Brazil"),
    ("Jazz was born in", "Jazz", "New Orleans", "Paris"),
    ("The weather in London is", "London weather", "rainy", "sunny"),
]
ZSRE = [("What is the capital of France?", "France", "Cairo"), ("Who wrote Hamlet?", "Hamlet", "Charles Dickens"),
        ("Which river flows through Cairo?", "Cairo", "The Thames")]
FORGETTING = ("forgetting.heldout_texts=4", "forgetting.facts=3", "forgetting.generation_prompts=2", "forgetting.generation_tokens=6")
TIMES = ("wall_seconds", "seconds_per_edit", "cpu_seconds_per_edit")


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    for name in ("counterfact", "personality", "zsre"):
        (folder / name).mkdir(parents=True)
    facts = [
        {"case_id": index, "prompt": prompt, "subject": subject, "target_new": new, "ground_truth": true,
         "rephrase_prompt": f"In short, {prompt.lower()}",  # a neighbour: another subject, the same relation and object
         "locality_prompt": f"Like it, the one next door: {prompt.lower()}", "locality_ground_truth": true}
        for index, (prompt, subject, true, new) in enumerate(EDITS + PROBE_FACTS)
    ]
    (folder / "counterfact" / "val.json").write_text(json.dumps(facts))
    topics = [{"ent": topic, **{trait: [f"I think {topic} is fine, says my {trait} side."] for trait in
               ("extraversion", "agreeableness", "neuroticism")}} for topic in ("jazz", "football")]
    (folder / "personality" / "dev.json").write_text(json.dumps(topics))
    questions = [
        {"subject": subject, "src": question, "pred": "", "rephrase": f"Tell me: {question}", "alt": target,
         "answers": ["unknown"], "loc": "nq question: what year did the war end?", "loc_ans": "1945", "cond": ""}
        for question, subject, target in ZSRE
    ]
    (folder / "zsre" / "dev.json").write_text(json.dumps(questions))
    return folder


def composed(tmp_path, data, results: str = "results", *overrides: str, **replaced) -> dict:
    """The composed study config, with `replaced` top-level keys set afterwards (Hydra merges dicts)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        config = compose(
            "study",
            [
                "model=tiny-llama",
                "algs.ft.ft.steps=2",
                "from_config=[ft,cache]",
                "datasets=[counterfact]",
                "checkpoints=[1,2,3,4]",
                "max_edits=4",
                "answer_locality=false",
                *FORGETTING,
                f"data_dir={data}",
                f"results_dir={tmp_path / results}",
                "device=cpu",
                *overrides,
            ],
        )
    return {**OmegaConf.to_container(config, resolve=True), **replaced}


@pytest.fixture
def edit_calls(monkeypatch):
    """The number of records of every add_edits call, by editor class; `interrupt_at` makes the nth call raise."""
    calls = {"ft": [], "cache": [], "interrupt_at": None}
    for label, kind in (("ft", FTEditor), ("cache", CacheEditor)):
        original = kind.add_edits

        def counted(self, edits, label=label, original=original):
            calls[label].append(len(edits))
            if calls["interrupt_at"] == len(calls[label]):
                raise RuntimeError("interrupted")
            return original(self, edits)

        monkeypatch.setattr(kind, "add_edits", counted)
    return calls


def rows(folder, run: str) -> list[dict]:
    return RunFolder(folder / run).rows()


def metrics_only(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in TIMES} for row in rows]


def test_the_study_writes_rows_at_each_checkpoint_a_report_by_definition_and_curves(tmp_path, data, edit_calls):
    folder = run_study(composed(tmp_path, data, "results", "datasets=[counterfact,zsre]", "answer_locality=true"))

    for label in ("ft", "cache"):
        assert [row["T"] for row in rows(folder, f"{label}__counterfact")] == [0, 1, 2, 3, 4]
        assert [row["T"] for row in rows(folder, f"{label}__zsre")] == [0, 1, 2, 3]  # zsRE holds 3 records
        assert RunFolder(folder / f"{label}__zsre").finished() == {"T": 3, "stopped": None}
    assert edit_calls["ft"] == [1] * 7  # one add_edit per record
    last = rows(folder, "ft__counterfact")[-1]
    for key in ("edit_success", "edit_token_accuracy", "efficacy_score", "locality_answer_f1_after", "heldout_perplexity",
                "repetitive_generations", "seconds_per_edit", "wall_seconds"):
        assert key in last
    assert rows(folder, "cache__counterfact")[-1]["edit_success"] == 1.0  # the cache answers its edit prompts exactly
    report = (folder / REPORT_FILE).read_text()
    for heading in ("## counterfact", "## zsre", "ours (strict) · edit success", "ours (strict) · edit success, latest target",
                    "ours (strict) · superseded", "EasyEdit/KnowEdit (token) · reliability",
                    "CounterFact (ROME/MEMIT) · neighbourhood", "forgetting · held-out perplexity", "| s/edit |"):
        assert heading in report
    assert "1 record(s) among them skipped: about a fact of the forgetting probe" in report  # The Nile
    assert "zsre/dev holds only 3 usable records: its runs stop at T = 3" in report
    assert "- **ft**: no collapse up to T=4" in report or "- **ft**: collapse at T=" in report
    # the summary at the last checkpoint: the token-level triple, its mean, the forgetting measures from T = 0
    summary = next(line for line in report.splitlines() if line.startswith("| ft | 4 |") and "→" in line)
    triple = [last[key] for key in ("edit_token_accuracy", "rephrase_token_accuracy", "locality_token")]
    first = rows(folder, "ft__counterfact")[0]
    assert summary.split(" | ")[2:6] == [f"{value:.3f}" for value in (*triple, sum(triple) / 3)]
    assert f"{first['heldout_perplexity']:.3g} → {last['heldout_perplexity']:.3g}" in summary
    for dataset in ("counterfact", "zsre"):
        assert (folder / f"{dataset}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (folder / f"{dataset}_summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({dataset}_summary.png)" in report


def test_report_only_rebuilds_the_tables_and_curves_from_saved_rows_without_editing(tmp_path, data, edit_calls):
    folder = run_study(composed(tmp_path, data, "results", "datasets=[counterfact,zsre]"))
    committed = tmp_path / "committed"  # what benchmarks/lifelong/results keeps of a run: rows, settings, finished
    for run in folder.glob("*__*"):
        (committed / run.name).mkdir(parents=True)
        for name in ("rows.jsonl", "settings.json", "finished.json"):
            shutil.copy(run / name, committed / run.name / name)
    calls_before = list(edit_calls["ft"])

    report = report_saved_rows(composed(tmp_path, data, "committed", "datasets=[counterfact,zsre]", "report_only=true"))

    assert edit_calls["ft"] == calls_before  # nothing edited
    original, rebuilt = (folder / REPORT_FILE).read_text(), report.read_text()
    tables = [line for line in original.splitlines() if line.startswith(("| ft |", "| cache |", "- **"))]
    assert tables and all(line in rebuilt for line in tables)  # every row and collapse line, from the saved rows
    for dataset in ("counterfact", "zsre"):
        assert (committed / f"{dataset}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="holds no run folder"):
        report_saved_rows(composed(tmp_path, data, "empty", "report_only=true"))


def test_an_interrupted_study_resumes_at_its_last_checkpoint_with_the_same_rows(tmp_path, data, edit_calls, monkeypatch):
    uninterrupted = run_study(composed(tmp_path, data, "uninterrupted", "answer_locality=true"))
    edit_calls.update(ft=[], cache=[], interrupt_at=3)  # the third edit, after checkpoint 2
    config = composed(tmp_path, data, "interrupted", "answer_locality=true")
    with pytest.raises(RuntimeError, match="interrupted"):
        run_study(config)
    assert [row["T"] for row in rows(tmp_path / "interrupted", "ft__counterfact")] == [0, 1, 2]

    edit_calls.update(ft=[], cache=[], interrupt_at=None)
    unedited_measured = []
    measure_unedited = Unedited.of.__func__
    monkeypatch.setattr(Unedited, "of", classmethod(lambda cls, editor, *args: unedited_measured.append(type(editor))
                                                    or measure_unedited(cls, editor, *args)))
    resumed = run_study(config)

    assert edit_calls["ft"] == [1, 1]  # records 3 and 4 only
    assert edit_calls["cache"] == [1] * 4  # it had not started
    assert unedited_measured == [CacheEditor]  # ft's unedited scores and answers were read back, not measured again
    for label in ("ft", "cache"):
        assert metrics_only(rows(resumed, f"{label}__counterfact")) == metrics_only(rows(uninterrupted, f"{label}__counterfact"))
    edit_calls.update(ft=[], cache=[])
    run_study(config)  # finished runs are skipped
    assert edit_calls["ft"] == [] and edit_calls["cache"] == []


def test_a_crash_between_saving_the_state_and_its_row_measures_that_checkpoint_again(tmp_path, data, edit_calls, monkeypatch):
    config = composed(tmp_path, data, "results", "from_config=[cache]")
    append_row = RunFolder.append_row

    def lose_the_second_row(self, row):
        if row["T"] == 2:
            raise RuntimeError("interrupted")
        append_row(self, row)

    monkeypatch.setattr(RunFolder, "append_row", lose_the_second_row)
    with pytest.raises(RuntimeError):
        run_study(config)
    monkeypatch.setattr(RunFolder, "append_row", append_row)
    edit_calls.update(cache=[])
    folder = run_study(config)
    assert [row["T"] for row in rows(folder, "cache__counterfact")] == [0, 1, 2, 3, 4]
    assert edit_calls["cache"] == [1, 1]
    assert rows(folder, "cache__counterfact")[-1]["edit_success"] == 1.0  # it went on from the saved edits


def test_a_run_folder_in_use_by_another_study_is_refused_and_left_untouched(tmp_path, data, edit_calls):
    config = composed(tmp_path, data, "results", "from_config=[ft]", "checkpoints=[1]", "max_edits=1")
    busy = RunFolder(tmp_path / "results" / "ft__counterfact")
    with busy.exclusive():  # as another serac-study process running this run would hold it
        with pytest.raises(FolderInUseError, match="ft__counterfact is in use"):
            run_study(config)
    assert edit_calls["ft"] == [] and busy.rows() == []
    run_study(config)  # released: the run goes on
    assert [row["T"] for row in busy.rows()] == [0, 1]


def test_a_changed_config_is_refused_naming_what_changed(tmp_path, data, edit_calls):
    run_study(composed(tmp_path, data, "results", "from_config=[ft]", "checkpoints=[1,2]", "max_edits=2"))
    with pytest.raises(ChangedSettingsError, match=r"changed: checkpoints \(was \[1, 2\], now \[1, 3\]\); records"):
        plan_study(composed(tmp_path, data, "results", "from_config=[ft]", "checkpoints=[1,3]", "max_edits=3"))
    with pytest.raises(ChangedSettingsError, match="changed: editor"):
        plan_study(composed(tmp_path, data, "results", "from_config=[ft]", "checkpoints=[1,2]", "max_edits=2", "algs.ft.ft.steps=3"))


def test_checkpoints_may_be_added_ahead_of_a_run_in_progress_but_not_behind_it_or_to_a_finished_run(tmp_path, data, edit_calls):
    finished = run_study(composed(tmp_path, data, "uninterrupted", "from_config=[ft]", "checkpoints=[1,4]"))
    edit_calls.update(ft=[], interrupt_at=3)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_study(composed(tmp_path, data, "results", "from_config=[ft]", "checkpoints=[1,4]"))
    run = RunFolder(tmp_path / "results" / "ft__counterfact")
    assert [row["T"] for row in run.rows()] == [0, 1]

    with pytest.raises(ChangedSettingsError, match=r"has rows at T = \[1\], which the new checkpoints \[2, 4\] leave out"):
        plan_study(composed(tmp_path, data, "results", "from_config=[ft]", "checkpoints=[2,4]"))
    with pytest.raises(ChangedSettingsError, match="is a finished run: its checkpoints cannot change"):
        plan_study(composed(tmp_path, data, "uninterrupted", "from_config=[ft]", "checkpoints=[1,2,4]"))
    edit_calls.update(ft=[], interrupt_at=None)
    resumed = run_study(composed(tmp_path, data, "results", "from_config=[ft]", "checkpoints=[1,2,4]"))
    assert edit_calls["ft"] == [1, 1, 1]  # from the state at T = 1, with a row at 2 on the way
    assert [row["T"] for row in rows(resumed, "ft__counterfact")] == [0, 1, 2, 4]
    assert json.loads((run.path / "settings.json").read_text())["checkpoints"] == [1, 2, 4]
    same = [row for row in metrics_only(rows(resumed, "ft__counterfact")) if row["T"] != 2]
    assert same == metrics_only(rows(finished, "ft__counterfact"))  # the added checkpoint changed no edit


def interrupted_at_the_fourth_edit(tmp_path, data, edit_calls, monkeypatch, results: str = "results") -> tuple[dict, RunFolder]:
    """FT run with checkpoints at 1 and 4, its state saved again at T = 3 (ten seconds of the study's
    clock pass with each edit, 20 s > state_every_seconds), then the fourth edit interrupted."""
    monkeypatch.setattr(lifelong_study, "clock", lambda: 10.0 * len(edit_calls["ft"]))
    config = composed(tmp_path, data, results, "from_config=[ft]", "checkpoints=[1,4]", "state_every_seconds=15")
    edit_calls.update(interrupt_at=4)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_study(config)
    edit_calls.update(interrupt_at=None)
    return config, RunFolder(Path(config["results_dir"]) / "ft__counterfact")


def test_a_checkpoint_behind_the_saved_state_is_refused(tmp_path, data, edit_calls, monkeypatch):
    interrupted_at_the_fourth_edit(tmp_path, data, edit_calls, monkeypatch)
    with pytest.raises(ChangedSettingsError, match=r"is at T = 3: the new checkpoints \[2\] can no longer be measured"):
        plan_study(composed(tmp_path, data, "results", "from_config=[ft]", "checkpoints=[1,2,4]", "state_every_seconds=15"))
    settings = json.loads((tmp_path / "results" / "ft__counterfact" / "settings.json").read_text())
    assert settings["checkpoints"] == [1, 4]  # a refused change leaves the settings as they were


def test_a_batch_editor_edits_its_step_of_records_at_once_and_is_measured_on_batch_boundaries(tmp_path, data, edit_calls):
    folder = run_study(composed(tmp_path, data, "results", "from_config=[ft]", "max_edits=5", edits_per_step={"ft": 2}))
    assert edit_calls["ft"] == [2, 2, 1]
    assert [row["T"] for row in rows(folder, "ft__counterfact")] == [0, 2, 4, 5]
    assert measured_at([1, 10, 100, 500, 1000], 537, 100) == [100, 500, 537]
    assert measured_at([1, 10, 100, 500, 1000], 1000, 1) == [1, 10, 100, 500, 1000]


def test_the_time_budget_stops_a_run_at_its_last_checkpoint_and_the_report_says_so(tmp_path, data, edit_calls, monkeypatch):
    # Ten seconds pass with each edit and none otherwise: the third edit spends the budget of 25.
    monkeypatch.setattr(lifelong_study, "clock", lambda: 10.0 * len(edit_calls["ft"]))
    config = composed(tmp_path, data, "results", "from_config=[ft]", "max_seconds_per_editor=25")
    folder = run_study(config)
    assert [row["T"] for row in rows(folder, "ft__counterfact")] == [0, 1, 2]
    assert RunFolder(folder / "ft__counterfact").finished() == {"T": 2, "stopped": "time budget"}
    assert "- **ft**: no collapse up to T=2; stopped at T=2 (time budget)" in (folder / REPORT_FILE).read_text()
    calls = len(edit_calls["ft"])
    run_study(config)
    assert len(edit_calls["ft"]) == calls  # a stopped run is finished


def test_between_checkpoints_the_state_is_saved_every_so_often_and_a_resume_starts_there(tmp_path, data, edit_calls, monkeypatch):
    # Ten seconds pass with each edit: after the checkpoint at T = 1 the state is saved again at T = 3
    # (20 s > 15 s since the last save); the fourth edit is interrupted.
    monkeypatch.setattr(lifelong_study, "clock", lambda: 10.0 * len(edit_calls["ft"]))
    uninterrupted = run_study(composed(tmp_path, data, "uninterrupted", "from_config=[ft]", "checkpoints=[1,4]", "state_every_seconds=15"))
    edit_calls.update(ft=[])
    config, run = interrupted_at_the_fourth_edit(tmp_path, data, edit_calls, monkeypatch, "interrupted")
    assert run.saved_progress()["T"] == 3 and [row["T"] for row in run.rows()] == [0, 1]  # a state, no row

    edit_calls.update(ft=[])
    resumed = run_study(config)
    assert edit_calls["ft"] == [1]  # record 4 only: records 2 and 3 came back with the state
    assert metrics_only(rows(resumed, "ft__counterfact")) == metrics_only(rows(uninterrupted, "ft__counterfact"))


def test_cpu_seconds_per_edit_count_only_the_edits_and_carry_over_a_resume(tmp_path, data, edit_calls, monkeypatch):
    # Each edit costs 2 CPU seconds and a measurement 100: only the edits' share is counted.
    measurements = []
    monkeypatch.setattr(lifelong_study, "cpu_clock", lambda: 2.0 * len(edit_calls["ft"]) + 100.0 * len(measurements))
    measure = lifelong_study.measure
    monkeypatch.setattr(lifelong_study, "measure", lambda *args: measurements.append(1) or measure(*args))
    config, run = interrupted_at_the_fourth_edit(tmp_path, data, edit_calls, monkeypatch)
    assert run.saved_progress()["edit_cpu_seconds"] == 6.0  # the state at T = 3

    edit_calls.update(ft=[1, 1, 1])  # the clocks go on from where they were
    resumed = run_study(config)
    assert [(row["T"], row.get("cpu_seconds_per_edit")) for row in rows(resumed, "ft__counterfact")] == [(0, None), (1, 2.0), (4, 2.0)]
    report = (resumed / REPORT_FILE).read_text()
    assert "| CPU s/edit |" in report and "CPU s/edit the process's CPU time" in report


def test_a_state_saved_before_cpu_time_was_recorded_resumes_without_it_rather_than_mixing(tmp_path, data, edit_calls, monkeypatch):
    config, run = interrupted_at_the_fourth_edit(tmp_path, data, edit_calls, monkeypatch)
    progress = run.saved_progress()
    del progress["edit_cpu_seconds"]
    (run.state / PROGRESS_FILE).write_text(json.dumps(progress))

    edit_calls.update(ft=[])
    resumed = run_study(config)
    assert [row["T"] for row in rows(resumed, "ft__counterfact")] == [0, 1, 4]
    assert "cpu_seconds_per_edit" in rows(resumed, "ft__counterfact")[1]  # measured before the interruption
    assert "cpu_seconds_per_edit" not in rows(resumed, "ft__counterfact")[2]


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(datasets=["nq"]), "each of datasets must be one of"),
        (dict(edits_per_step={"memit_batch10": 10}), "edits_per_step names 'memit_batch10', which is neither an editor"),
        (dict(checkpoints=[0, 10]), "each of checkpoints must be an int >= 1"),
        (dict(forgetting={"heldout_text": 4}), "forgetting has no setting heldout_text"),
        (dict(max_seconds_per_editor=-1), "max_seconds_per_editor must be a finite number"),
        (dict(state_every_seconds=0), "state_every_seconds must be a finite number"),
    ],
)
def test_bad_settings_are_refused_before_any_editing(tmp_path, data, edit_calls, bad, message):
    with pytest.raises(ValueError, match=message):
        plan_study(composed(tmp_path, data, "results", **bad))
    assert edit_calls["ft"] == []


def test_a_saved_editor_is_studied_from_a_copy_and_its_folder_is_left_untouched(tmp_path, data, edit_calls):
    saved = tmp_path / "calibrated-cache"
    cache = CacheEditor.from_config({"model": {"name": "tiny-llama", "prompt_format": "plain"}, "alg": {"cache": {}}, "device": "cpu"})
    cache.save(saved)
    cache.close()
    before = {path.relative_to(saved): path.read_bytes() for path in saved.rglob("*") if path.is_file()}

    folder = run_study(composed(tmp_path, data, "results", "from_config=[]", f"+editors.saved_cache={saved}", "checkpoints=[1,2]", "max_edits=2"))

    assert [row["T"] for row in rows(folder, "saved_cache__counterfact")] == [0, 1, 2]
    assert {path.relative_to(saved): path.read_bytes() for path in saved.rglob("*") if path.is_file()} == before
    assert not (folder / "saved_cache__counterfact" / "live").exists()


def test_configure_sets_a_saved_editors_settings_when_loaded_and_again_on_resume(tmp_path, data, monkeypatch):
    saved = tmp_path / "calibrated-cache"
    cache = CacheEditor.from_config({"model": {"name": "tiny-llama", "prompt_format": "plain"}, "alg": {"cache": {}}, "device": "cpu"})
    cache.save(saved)
    cache.close()
    seen = []  # the cache's epsilon at each add_edits call
    original = CacheEditor.add_edits

    def add_edits(self, edits):
        seen.append(self.config.epsilon)
        if len(seen) == 3:
            raise RuntimeError("interrupted")
        return original(self, edits)

    monkeypatch.setattr(CacheEditor, "add_edits", add_edits)
    overrides = ("from_config=[]", f"+editors.narrow={saved}", "+configure.narrow.epsilon=0.25")
    with pytest.raises(RuntimeError, match="interrupted"):
        run_study(composed(tmp_path, data, "results", *overrides))
    folder = run_study(composed(tmp_path, data, "results", *overrides))  # resumed at T = 2 from the saved state

    assert seen == [0.25] * 5 and [row["T"] for row in rows(folder, "narrow__counterfact")] == [0, 1, 2, 3, 4]
    settings = json.loads((folder / "narrow__counterfact" / "settings.json").read_text())
    assert settings["editor"] == {"saved_editor": str(saved), "configure": {"epsilon": 0.25}}
    with pytest.raises(ChangedSettingsError, match="changed: editor"):
        plan_study(composed(tmp_path, data, "results", "from_config=[]", f"+editors.narrow={saved}", "+configure.narrow.epsilon=0.5"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("+configure.serac.threshold=0.5",), "configure names 'serac', which is no editor of this study"),
        (("from_config=[ft]", "+configure.ft.threshold=0.5"), "the ft editor has no settings to change"),
        (("from_config=[cache]", "+configure.cache.epsilon=-1"), "configure on the cache editor"),
    ],
)
def test_configure_refuses_unknown_editors_and_settings_they_do_not_take(tmp_path, data, edit_calls, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_study(composed(tmp_path, data, "results", "checkpoints=[1]", "max_edits=1", *overrides))
    assert edit_calls["ft"] == [] and edit_calls["cache"] == []


@pytest.fixture
def statistics_data(tmp_path, data, monkeypatch):
    """The data folder with what ROME/MEMIT's layer statistics read (CounterFact and zsRE train
    texts), the statistics cached under tmp_path."""
    monkeypatch.setenv("SERAC_CACHE", str(tmp_path / "cache"))
    write_tiny_data(data)
    (data / "zsre" / "train.json").write_text((data / "zsre" / "dev.json").read_text())
    return data


def cheap(label: str, alg: str) -> list[str]:
    """Value optimisation and statistics small enough for a tiny model and a tiny sample."""
    return [f"algs.{label}.{alg}.{setting}" for setting in ("num_prefixes=1", "prefix_length=3", "value_steps=3", "stats_tokens=300")]


def test_rome_one_edit_at_a_time_and_memit_in_batches_run_through_the_study_and_resume(tmp_path, statistics_data, monkeypatch):
    data = statistics_data
    overrides = (
        "from_config=[rome,memit_batch100]", "algs.rome.rome.layer=1", "algs.memit_batch100.memit.layers=[0,1]",
        *cheap("rome", "rome"), *cheap("memit_batch100", "memit"),
    )
    config = composed(tmp_path, data, "results", *overrides, edits_per_step={"memit_batch100": 2})
    uninterrupted = run_study(config)
    assert [row["T"] for row in rows(uninterrupted, "rome__counterfact")] == [0, 1, 2, 3, 4]
    assert [row["T"] for row in rows(uninterrupted, "memit_batch100__counterfact")] == [0, 2, 4]
    for run in ("rome__counterfact", "memit_batch100__counterfact"):
        first, last = rows(uninterrupted, run)[0], rows(uninterrupted, run)[-1]
        assert last["heldout_perplexity"] != first["heldout_perplexity"]  # the edits moved the weights

    # Killed after ROME's second checkpoint: the run resumes from its saved weight deltas, and
    # every row is the uninterrupted run's.
    interrupted = composed(tmp_path, data, "interrupted", *overrides, edits_per_step={"memit_batch100": 2})
    append_row = RunFolder.append_row

    def stop_after_t2(self, row):
        append_row(self, row)
        if row["T"] == 2 and self.path.name == "rome__counterfact":
            raise RuntimeError("interrupted")

    monkeypatch.setattr(RunFolder, "append_row", stop_after_t2)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_study(interrupted)
    monkeypatch.setattr(RunFolder, "append_row", append_row)
    resumed = run_study(interrupted)
    for run in ("rome__counterfact", "memit_batch100__counterfact"):
        assert metrics_only(rows(resumed, run)) == metrics_only(rows(uninterrupted, run))


def load_metadata(path: Path) -> dict:
    with safe_open(path, framework="pt") as stored:
        return stored.metadata()


def test_a_memit_batch_interrupted_mid_way_resumes_with_the_values_it_had_found(tmp_path, statistics_data, monkeypatch):
    # A batch of 100 is hours of value optimisation on a CPU: a kill mid-batch must not start it over.
    import mend.memit.editor as memit_editor

    data = statistics_data
    overrides = ("from_config=[memit_batch100]", "algs.memit_batch100.memit.layers=[0,1]", "datasets=[counterfact]",
                 *cheap("memit_batch100", "memit"))
    uninterrupted = run_study(composed(tmp_path, data, "results", *overrides, edits_per_step={"memit_batch100": 4}))

    optimise, optimised = memit_editor.optimise_value, []

    def killed_at_the_third_value(*args, **kwargs):
        if len(optimised) == 2:
            raise RuntimeError("killed")
        optimised.append(args[4])  # the edit's target
        return optimise(*args, **kwargs)

    interrupted = composed(tmp_path, data, "interrupted", *overrides, edits_per_step={"memit_batch100": 4})
    monkeypatch.setattr(memit_editor, "optimise_value", killed_at_the_third_value)
    with pytest.raises(RuntimeError, match="killed"):
        run_study(interrupted)
    run = Path(interrupted["results_dir"]) / "memit_batch100__counterfact"
    assert len(list((run / "values").iterdir())) == 2
    found = [load_metadata(path) for path in (run / "values").iterdir()]
    monkeypatch.setattr(memit_editor, "optimise_value", lambda *args, **kwargs: optimised.append(args[4]) or optimise(*args, **kwargs))
    # The study's clocks stand still in the resumed run: its seconds are then those the two values read
    # back took when they were found (counted as if the batch had not been cut short), and no more.
    monkeypatch.setattr(lifelong_study, "clock", lambda: 0.0)
    monkeypatch.setattr(lifelong_study, "cpu_clock", lambda: 0.0)
    resumed = run_study(interrupted)
    assert len(optimised) == 4  # the resumed batch optimised only the two values it had not found
    last = rows(resumed, run.name)[-1]
    assert last["seconds_per_edit"] == pytest.approx(sum(float(meta["seconds"]) for meta in found) / 4)
    assert last["cpu_seconds_per_edit"] == pytest.approx(sum(float(meta["cpu_seconds"]) for meta in found) / 4)
    assert metrics_only(rows(resumed, run.name)) == metrics_only(rows(uninterrupted, run.name))
    assert not (run / "values").exists()  # a finished run needs none
    assert "value_cache" not in (run / "settings.json").read_text()  # where values are kept changes no figure


def test_the_unedited_measurements_are_read_back_and_a_damaged_file_is_measured_again(tmp_path):
    score = TargetScore(torch.tensor([5, 7]), torch.tensor([-0.5, -1.5]), torch.tensor([5, 3]))
    measured = Unedited({"zsre/dev:0": [score]}, {"zsre/dev:0": ["Paris"]})
    calls = []
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()

    def measure():
        calls.append(1)
        return measured

    folder.unedited(measure)
    second = folder.unedited(measure)
    assert len(calls) == 1 and second.answers == measured.answers
    assert torch.equal(second.scores["zsre/dev:0"][0].logprobs, score.logprobs)
    assert torch.equal(second.scores["zsre/dev:0"][0].predicted_ids, score.predicted_ids)

    (folder.path / "unedited.pt").write_bytes(b"not a torch file")
    assert folder.unedited(measure) is measured and len(calls) == 2
