"""Bad inputs through the API and the CLIs: each is our clear error, raised before anything is
stored or any work starts (the outside test's list, issue 12, and more)."""

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_serac import tiny_config

from index import NotAnEditMemoryError
from serac import SERAC
from serac.core.evaluation import EvalConfig
from serac.core.models import ModelNotFoundError, load_model
from serac.core.saving import NotASavedEditorError, SaveTargetError, exclusive_folder
from serac.serac.config import SERACConfig

SURROGATE = "Who wrote \udc80 Hamlet?"


def _stored(editor) -> int:
    return len(editor.edit_ids())


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda e: e.add_edit(SURROGATE, "Marlowe"), ValueError, "lone surrogate"),
        (lambda e: e.add_edit("Who wrote Hamlet?", "Mar\ud800lowe"), ValueError, "lone surrogate"),
        (lambda e: e.add_edits([("fine?", "ok"), (SURROGATE, "x")]), ValueError, "edit 1 prompt"),
        (lambda e: e.add_edits("abc"), TypeError, "list of"),
        (lambda e: e.add_edits([("only a prompt",)]), TypeError, "pair"),
        (lambda e: e.add_edit("", "x"), ValueError, "empty"),
        (lambda e: e.add_edit("q?", "   "), ValueError, "empty"),
        (lambda e: e.add_edit(None, "x"), TypeError, "must be a string"),
        (lambda e: e.add_edit("q" * 20_000, "x"), ValueError, "characters long"),
        (lambda e: e.query(SURROGATE), ValueError, "lone surrogate"),
        (lambda e: e.query_batch("abc"), TypeError, "list of strings"),
        (lambda e: e.query_batch([b"bytes"]), TypeError, "must be a string"),
        (lambda e: e.query("q?", max_new_tokens=0), ValueError, "max_new_tokens"),
        (lambda e: e.query("q?", max_new_tokens=10**6), ValueError, "from 1 to 512"),
        (lambda e: e.query("q?", max_new_tokens=2.5), ValueError, "max_new_tokens"),
        (lambda e: e.query("q?", max_new_tokens=True), ValueError, "max_new_tokens"),
        (lambda e: e.score(["q?"], [""]), ValueError, "target 0 must not be empty"),
        (lambda e: e.score(["q?"], ["a", "b"]), ValueError, "1 prompts but 2 targets"),
        (lambda e: e.score("q?", ["a"]), TypeError, "list of strings"),
        (lambda e: e.target_logprobs(["q?"], [SURROGATE]), ValueError, "lone surrogate"),
        (lambda e: e.remove_edit(2**70), KeyError, "no edit"),
        (lambda e: e.remove_edit(str(2**70)), KeyError, "no edit"),
        (lambda e: e.remove_edit("1"), KeyError, "no edit"),
        (lambda e: e.remove_edit("-1"), KeyError, "no edit"),
        (lambda e: e.remove_edit("abc"), KeyError, "no edit"),
        (lambda e: e.remove_edit(None), KeyError, "no edit"),
        (lambda e: e.configure(top_k=10**8), ValueError, "top_k must be an int from 1 to 1000"),
        (lambda e: e.configure(top_k=2.5), ValueError, "top_k"),
        (lambda e: e.configure(top_k=0), ValueError, "top_k"),
        (lambda e: e.configure(threshold=True), ValueError, "threshold"),
        (lambda e: e.configure(threshold=1.5), ValueError, "threshold"),
        (lambda e: e.configure(threshold=math.nan), ValueError, "threshold"),
        (lambda e: e.configure(threshold="0.5"), ValueError, "threshold"),
        (lambda e: e.configure(conflict_margin=math.nan), ValueError, "conflict_margin"),
        (lambda e: e.configure(conflict_margin=math.inf), ValueError, "conflict_margin"),
        (lambda e: e.configure(conflict_margin=-1), ValueError, "conflict_margin"),
        (lambda e: e.configure(max_classifier_tokens=0), ValueError, "max_classifier_tokens"),
        (lambda e: e.configure(max_classifier_tokens=64), ValueError, "cannot change \\['max_classifier_tokens'\\]"),
        (lambda e: e.configure(max_new_tokens=0), ValueError, "max_new_tokens"),
        (lambda e: e.configure(max_new_tokens="lots"), ValueError, "max_new_tokens"),
        (lambda e: e.configure(rerank="yes"), ValueError, "rerank"),
        (lambda e: e.configure(conflicts="oldest"), ValueError, "conflicts"),
        (lambda e: e.configure(model_name="other"), ValueError, "cannot change"),
        (lambda e: e.save(""), SaveTargetError, "path of a folder"),
    ],
)
def test_bad_api_input_is_our_error_and_stores_nothing(editor, call, error, message):
    config = editor.config
    with pytest.raises(error, match=message):
        call(editor)
    assert _stored(editor) == 0 and editor.config == config


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_new_tokens", "lots"), ("top_k", 10**8), ("threshold", True), ("conflict_margin", None), ("max_classifier_tokens", 0)],
)
def test_a_saved_config_with_a_bad_value_is_refused_on_load(editor, tmp_path, setting, value):
    editor.save(tmp_path / "saved")
    body = json.loads((tmp_path / "saved" / "editor.json").read_text())
    body["config"][setting] = value
    (tmp_path / "saved" / "editor.json").write_text(json.dumps(body))
    with pytest.raises(NotASavedEditorError, match=f"editor.json.*{setting}"):
        SERAC.load(tmp_path / "saved", device="cpu")


@pytest.mark.parametrize(
    "settings",
    [dict(protocol="single", max_records=0), dict(max_records=-1), dict(checkpoints=(0, -5)), dict(checkpoints=(1.5,)),
     dict(batch_size=0), dict(protocol="random")],
)
def test_bad_evaluation_settings_are_refused(settings):
    with pytest.raises(ValueError):
        EvalConfig(**settings)


def test_a_misspelt_model_name_fails_in_seconds_with_our_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="smollm2-135'"):
        load_model("smollm2-135")
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        load_model("./no/such/model")
    assert time.perf_counter() - started < 5


def test_a_missing_counterfactual_folder_is_named(editor, tmp_path):
    editor.save(tmp_path / "saved")
    for file in (tmp_path / "saved" / "counterfactual").iterdir():
        file.unlink()
    (tmp_path / "saved" / "counterfactual").rmdir()
    with pytest.raises(NotASavedEditorError, match="counterfactual/config.json is missing"):
        SERAC.load(tmp_path / "saved", device="cpu")


def test_a_memory_lock_that_is_a_directory_is_our_error(tmp_path):
    (tmp_path / "memory" / "memory.lock").mkdir(parents=True)
    with pytest.raises(NotAnEditMemoryError, match="memory.lock is not a plain file"):
        SERAC.from_pretrained(tiny_config(), device="cpu", memory_path=tmp_path / "memory")


def test_bad_config_values_are_refused_when_built():
    for bad in (dict(top_k=True), dict(index_kind="annoy"), dict(prompt_format="markdown"), dict(model_name="")):
        with pytest.raises(ValueError):
            SERACConfig(**bad)


def _cli(name: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / name), *overrides, f"hydra.run.dir={cwd}/hydra"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd, env={"HF_HUB_OFFLINE": "1", "PATH": ""})


@pytest.mark.parametrize(
    ("command", "message", "traceback"),
    [
        (("serac-evaluate", "model=tiny-llama", "max_records=0"), "serac-evaluate: max_records", False),
        (("serac-evaluate", "model=tiny-llama", "editor_path=no/such/editor"), "serac-evaluate: no/such/editor is not a folder", False),
        (("serac-evaluate", "alg=ft", "model=tiny-llama", "device=cpu", "+configure.threshold=0.5"),
         "serac-evaluate: the ft editor has no settings to change", False),
        (("serac-train", "alg=serac_quick", "model=tiny-llama", "alg.serac.classifier_backbone=tiny-bertt", "device=cpu"),
         "serac-train: model 'tiny-bertt'", False),
        (("serac-train", "alg=serac_quick", "model=tiny-llama", "alg.serac.classifier_backbone=tiny-bert", "device=cpu",
          "++alg.counterfactual_training.lr=-1", "alg.train_limit=8"), "serac-train: lr must be positive", False),
        (("serac-train", "alg=mend_quick", "model=tiny-llama", "device=cpu", "alg.mend.rank=0"),
         "serac-train: MENDConfig.rank must be an int >= 1", False),
        (("serac-train", "alg=mend_quick", "model=tiny-llama", "device=cpu", "++alg.training.no_such_setting=1"),
         "unexpected keyword argument 'no_such_setting'", False),
        (("serac-evaluate", "alg=ft", "model=tiny-llama", "device=cpu", "alg.ft.lr=-1"),
         "serac-evaluate: FTConfig.lr must be a finite number > 0", False),
    ],
)
def test_bad_cli_settings_fail_before_any_work(tmp_path, command, message, traceback):
    output = () if command[0] == "serac-evaluate" else (f"output_dir={tmp_path}/out",)
    finished = _cli(*command, *output, cwd=tmp_path)
    assert finished.returncode != 0
    assert message in finished.stderr
    assert ("Traceback" in finished.stderr) == traceback
    assert not (tmp_path / "out" / "scope_classifier").exists()


def test_the_cache_refuses_bad_settings_with_our_errors(tiny_lm):
    from serac.cache.editor import CacheEditor

    cache = CacheEditor(tiny_lm("tiny-llama"))
    try:
        for bad in (dict(epsilon=-1), dict(epsilon=math.nan), dict(batch_size=0), dict(max_new_tokens=10**6), dict(colour="red")):
            with pytest.raises(ValueError):
                cache.configure(**bad)
    finally:
        cache.close()


def test_training_into_a_folder_another_run_is_training_in_is_our_error(tmp_path):
    training = tmp_path / "out" / "training"
    with exclusive_folder(training, "a training run"):  # the first run's process, still training
        finished = _cli("serac-train", "alg=mend_quick", "model=tiny-llama", "device=cpu", "alg.train_limit=8",
                        f"output_dir={tmp_path}/out", cwd=tmp_path)
    assert finished.returncode != 0
    assert f"serac-train: {training} is in use" in finished.stderr and "Traceback" not in finished.stderr
    assert list(training.iterdir()) == []
