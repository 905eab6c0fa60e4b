"""Dialogue editing from the command line, end to end on tiny models (chat prompt format)."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from serac.cli import CONFIG_DIR
from serac.core.dialogue_evaluation import DialogueEvalConfig
from serac.core.registry import editor_class

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "convsent_small.json"
BIN = Path(sys.executable).parent
TINY_CHAT = ["model=tiny-llama", "model.prompt_format=chat", "device=cpu"]
FEW_STEPS = {"max_steps": 2, "val_every": 1, "batch_size": 4, "val_batches": 2}


def run(command: list[str]) -> str:
    # One thread: tiny models gain nothing from more, and the machine is shared.
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout


def test_the_dialogue_configs_compose():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        train = compose("train", ["alg=serac_quick", "experiment=personality"])
        evaluate = compose("evaluate_dialogue", ["experiment=convsent"])
    assert (train.model.name, train.model.prompt_format) == ("smollm2-135m", "auto")
    assert (train.experiment.dataset, train.experiment.train_split) == ("personality", "train")
    assert (evaluate.experiment.dataset, evaluate.experiment.eval_split, evaluate.model.prompt_format) == (
        "convsent",
        "dev",
        "auto",
    )
    assert {field.name for field in dataclasses.fields(DialogueEvalConfig)} <= set(evaluate)


def test_convsent_edits_with_mend_on_question_reply_pairs(tmp_path):
    run(
        [
            str(BIN / "serac-evaluate-dialogue"),
            "alg=mend",
            "alg.mend.rank=4",
            "experiment=convsent",
            f"experiment.eval_split={FIXTURE}",
            *TINY_CHAT,
            "edit_with=replies",
            "sample_generations=1",
            "generation_tokens=3",
            f"results_dir={tmp_path}",
            f"hydra.run.dir={tmp_path}/hydra",
        ]
    )
    results = json.loads((tmp_path / "results.json").read_text())
    [row] = results["rows"]
    assert row["edits"] == 2 and 0.0 <= row["score"] <= row["success"] <= 1.0 and row["drawdown"] >= 0.0
    assert row["in_scope_routed"] == 0.0  # MEND has no routing
    assert results["metadata"]["dataset"] == f"convsent/{FIXTURE}"
    assert [g["scope"] for g in results["sections"]["Sample generations"]] == ["in scope", "out of scope"]
    assert "## Sample generations" in (tmp_path / "results.md").read_text()


def test_personality_serac_trains_and_is_evaluated_sequentially(tmp_path):
    run(
        [
            str(BIN / "serac-train"),
            "alg=serac_quick",
            "experiment=personality",
            *TINY_CHAT,
            "alg.serac.classifier_backbone=tiny-bert",
            "alg.train_limit=12",
            *[
                f"++alg.{part}.{key}={value}"
                for part in ("classifier_training", "counterfactual_training")
                for key, value in FEW_STEPS.items()
            ],
            f"output_dir={tmp_path}/train",
            f"hydra.run.dir={tmp_path}/train/hydra",
        ]
    )
    trained = editor_class("serac").load(tmp_path / "train" / "editor")
    kept = trained.add_edit("What do you think of my own edit?", "I keep it.")  # durable when it returns
    trained.close()
    output = run(
        [
            str(BIN / "serac-evaluate-dialogue"),
            f"editor_path={tmp_path}/train/editor",
            "experiment=personality",
            *TINY_CHAT,
            "max_records=3",
            "protocol=sequential",
            "checkpoints=[1]",
            "sample_generations=1",
            "generation_tokens=3",
            f"results_dir={tmp_path}/eval",
            f"hydra.run.dir={tmp_path}/eval/hydra",
        ]
    )
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert [row["edits"] for row in rows] == [1, 3]
    assert all(0.0 <= row["in_scope_routed"] <= 1.0 and row["drawdown"] >= 0.0 for row in rows)
    assert "serac on personality/dev" in output
    # The evaluation edited and reset a working copy, not the user's folder.
    trained = editor_class("serac").load(tmp_path / "train" / "editor")
    assert trained.edit_ids() == [kept]
    trained.close()
    assert not (tmp_path / "eval" / "editor_working_copy").exists()
