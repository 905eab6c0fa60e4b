import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_toy import PAIRS, AnswerQuestions, WithUnusedParameters

from serac.core.saving import FolderInUseError, exclusive_folder
from serac.core.train_config import TrainConfig
from serac.core.training import CheckpointError, load_trained_weights, train
from serac.core.validation_curves import read_validation_curves

TOY_SCRIPT = Path(__file__).with_name("training_toy.py")


def config(output_dir, **overrides) -> TrainConfig:
    settings = dict(
        output_dir=str(output_dir), lr=1e-2, batch_size=4, max_steps=6, val_every=3, log_every=1,
        early_stop_metric="accuracy", early_stop_mode="max",
    )
    return TrainConfig(**settings | overrides)


def rows(result_or_path) -> list[dict]:
    path = getattr(result_or_path, "metrics_csv", result_or_path)
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def weights(algorithm) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in algorithm.state_dict().items()}


def test_training_lowers_the_loss_and_raises_accuracy_and_keeps_the_best_weights(tmp_path):
    algorithm = AnswerQuestions()
    result = train(algorithm, PAIRS, PAIRS, config(tmp_path, max_steps=50, val_every=25, log_every=5, tensorboard=True))

    logged = rows(result)
    train_rows = [row for row in logged if row["train/loss"]]
    val_rows = [row for row in logged if row["val/accuracy"]]
    assert [int(row["step"]) for row in train_rows] == list(range(5, 51, 5))
    assert [int(row["step"]) for row in val_rows] == [25, 50]
    assert float(train_rows[-1]["train/loss"]) < float(train_rows[0]["train/loss"]) / 2
    assert {"train/perplexity", "train/lr", "train/grad_norm", "val/loss"} <= set(logged[0])
    before = AnswerQuestions().eval()
    initial_accuracy = before.validate(before.collate(PAIRS))["accuracy"]
    assert float(val_rows[-1]["val/accuracy"]) > initial_accuracy
    assert result.steps == 50 and not result.stopped_early
    assert result.best_metric == max(float(row["val/accuracy"]) for row in val_rows)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))

    assert load_trained_weights(before, result.best_dir)["step"] == str(result.best_step)
    assert before.validate(before.collate(PAIRS))["accuracy"] == pytest.approx(result.best_metric)


def test_frozen_parameters_stay_put_and_are_left_out_of_the_best_weights(tmp_path):
    algorithm = AnswerQuestions()
    frozen = algorithm.model.model.layers[0]
    frozen.requires_grad_(False)
    before = {name: tensor.clone() for name, tensor in frozen.state_dict().items()}
    result = train(algorithm, PAIRS, PAIRS, config(tmp_path, max_steps=2))
    assert all(torch.equal(before[name], tensor) for name, tensor in frozen.state_dict().items())
    saved = load_file(result.best_dir / "model.safetensors")
    assert saved and not [name for name in saved if ".layers.0." in name]


def test_a_resumed_run_starts_at_the_checkpoint_and_ends_where_an_uninterrupted_run_does(tmp_path):
    # Accumulation over an epoch boundary, dropout and a decaying schedule all have to resume exactly.
    settings = dict(
        batch_size=3, grad_accumulation=2, max_steps=10, val_every=5, checkpoint_every=5,
        warmup_steps=2, lr_decay="linear",
    )
    uninterrupted = AnswerQuestions(attention_dropout=0.2)
    train(uninterrupted, PAIRS, PAIRS, config(tmp_path / "straight", **settings))

    with pytest.raises(RuntimeError, match="simulated crash at step 8"):
        train(AnswerQuestions(attention_dropout=0.2, crash_at_step=8), PAIRS, PAIRS, config(tmp_path / "run", **settings))
    resumed = AnswerQuestions(attention_dropout=0.2)
    result = train(resumed, PAIRS, PAIRS, config(tmp_path / "run", **settings))  # resuming is the default

    assert resumed.steps_seen == [6, 7, 8, 9, 10]
    assert result.steps == 10
    expected, actual = weights(uninterrupted), weights(resumed)
    assert all(torch.allclose(expected[name], actual[name], atol=1e-6) for name in expected)
    # The rows the crashed run logged after its checkpoint (steps 6, 7) were replaced, not duplicated.
    assert [int(row["step"]) for row in rows(result) if row["train/loss"]] == list(range(1, 11))
    assert rows(result) == rows(tmp_path / "straight" / "metrics.csv")


def test_validation_curves_are_kept_per_validation_plotted_and_resumed_without_duplicates(tmp_path):
    settings = dict(max_steps=8, val_every=2, checkpoint_every=4, plot_validation=True)
    with pytest.raises(RuntimeError, match="simulated crash at step 6"):
        train(AnswerQuestions(crash_at_step=6), PAIRS, PAIRS, config(tmp_path, **settings))
    assert [row["step"] for row in read_validation_curves(tmp_path / "validation.jsonl")] == [2, 4]
    train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, resume=True, **settings))

    curves = read_validation_curves(tmp_path / "validation.jsonl")
    assert [row["step"] for row in curves] == [2, 4, 6, 8]
    assert {"epoch", "time", "elapsed_seconds", "loss", "accuracy"} <= set(curves[0])
    elapsed = [row["elapsed_seconds"] for row in curves]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0  # training time goes on across the resume
    assert (tmp_path / "validation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, **settings | {"max_steps": 2, "resume": False}))  # a fresh start
    assert [row["step"] for row in read_validation_curves(tmp_path / "validation.jsonl")] == [2]


def test_resuming_a_finished_run_does_nothing_more(tmp_path):
    train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, max_steps=4, checkpoint_every=2))
    again = AnswerQuestions()
    result = train(again, PAIRS, PAIRS, config(tmp_path, max_steps=4, checkpoint_every=2, resume=True))
    assert again.steps_seen == [] and result.steps == 4
    assert len(rows(result)) == 4 + 2  # four train rows, two validations


def test_a_second_run_in_a_folder_another_run_is_training_in_is_refused_and_writes_nothing(tmp_path):
    train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, max_steps=4, checkpoint_every=2))
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
    second = AnswerQuestions()
    with exclusive_folder(tmp_path, "a training run"):  # as the first run's process holds it while it trains
        with pytest.raises(FolderInUseError, match="in use: another process is running a training run"):
            train(second, PAIRS, PAIRS, config(tmp_path, max_steps=6, checkpoint_every=2))
    assert second.steps_seen == [] and {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")} == before
    assert train(second, PAIRS, PAIRS, config(tmp_path, max_steps=6, checkpoint_every=2)).steps == 6  # released


def test_early_stopping_ends_the_run_after_patience_validations_without_improvement(tmp_path):
    # The loss falls as the model learns, so in "max" mode it never improves on the first validation.
    settings = dict(max_steps=100, val_every=2, early_stop_metric="loss", early_stop_mode="max", early_stop_patience=2)
    result = train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, checkpoint_every=50, **settings))
    assert result.stopped_early
    assert result.steps == 6 and result.best_step == 2
    assert json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())["bad_validations"] == 2


def test_lr_reductions_go_back_to_the_best_weights_at_a_lower_rate_before_stopping(tmp_path):
    # "max" mode on the loss: only the first validation (step 2) is ever the best, so the patience
    # runs out at step 6, the run goes on from step 2's weights at lr / 10, and stops at step 10.
    settings = dict(max_steps=100, val_every=2, early_stop_metric="loss", early_stop_mode="max", early_stop_patience=2,
                    checkpoint_every=50, lr_reduction_restores_best=True)
    straight = AnswerQuestions()
    result = train(straight, PAIRS, PAIRS, config(tmp_path / "straight", lr_reductions=1, **settings))

    assert result.stopped_early and result.steps == 10 and result.best_step == 2
    rates = {int(row["step"]): float(row["train/lr"]) for row in rows(result) if row["train/lr"]}
    assert [rates[step] for step in range(1, 11)] == pytest.approx([1e-2] * 6 + [1e-3] * 4)
    state = json.loads((tmp_path / "straight" / "checkpoint" / "trainer_state.json").read_text())
    assert state["lr_reductions"] == 1 and state["bad_validations"] == 2
    curves = read_validation_curves(tmp_path / "straight" / "validation.jsonl")
    assert [row["lr"] for row in curves] == pytest.approx([1e-2] * 3 + [1e-3] * 2)  # steps 2-6, then 8 and 10

    # A run that stopped without reductions goes on from its best weights when resumed with one.
    train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path / "run", **settings))
    best = load_file(tmp_path / "run" / "best" / "model.safetensors")
    at_the_stop = AnswerQuestions()
    train(at_the_stop, PAIRS, PAIRS, config(tmp_path / "run", lr_reductions=1, **settings | {"max_steps": 6}))
    assert all(torch.equal(weights(at_the_stop)[name], tensor) for name, tensor in best.items())
    resumed = AnswerQuestions()
    train(resumed, PAIRS, PAIRS, config(tmp_path / "run", lr_reductions=1, **settings))
    assert resumed.steps_seen == [7, 8, 9, 10]
    expected, actual = weights(straight), weights(resumed)
    assert all(torch.allclose(expected[name], actual[name], atol=1e-6) for name in expected)


def test_by_default_an_lr_reduction_goes_on_from_the_weights_the_run_has(tmp_path):
    settings = dict(max_steps=100, val_every=2, early_stop_metric="loss", early_stop_mode="max", early_stop_patience=2,
                    checkpoint_every=50)
    stopped = AnswerQuestions()
    train(stopped, PAIRS, PAIRS, config(tmp_path, **settings))  # stops at step 6, best at step 2
    at_the_stop = AnswerQuestions()
    train(at_the_stop, PAIRS, PAIRS, config(tmp_path, lr_reductions=1, **settings | {"max_steps": 6}))

    best = load_file(tmp_path / "best" / "model.safetensors")
    assert not all(torch.equal(weights(at_the_stop)[name], tensor) for name, tensor in best.items())
    assert all(torch.allclose(weights(stopped)[name], tensor) for name, tensor in weights(at_the_stop).items())
    resumed = AnswerQuestions()
    result = train(resumed, PAIRS, PAIRS, config(tmp_path, lr_reductions=1, **settings))
    assert resumed.steps_seen == [7, 8, 9, 10] and result.stopped_early
    assert [float(row["train/lr"]) for row in rows(result) if row["train/lr"] and int(row["step"]) > 6] == pytest.approx([1e-3] * 4)


def test_max_epochs_bounds_the_run_and_the_schedule_and_the_last_step_is_validated(tmp_path):
    # 8 items in batches of 3 -> 3 batches per epoch -> 2 updates per epoch with accumulation 2
    settings = dict(batch_size=3, grad_accumulation=2, max_epochs=2, val_every=100, warmup_steps=2, lr_decay="linear")
    result = train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, **settings))
    assert result.steps == 4
    logged = rows(result)
    assert [(row["step"], row["epoch"]) for row in logged if row["val/accuracy"]] == [("4", "1")]
    # linear warmup over 2 updates, then linear decay towards 0 at update 4
    assert [float(row["train/lr"]) for row in logged if row["train/lr"]] == pytest.approx([5e-3, 1e-2, 1e-2, 5e-3])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    train(AnswerQuestions(), PAIRS, PAIRS, config(folder, max_steps=2, checkpoint_every=2))
    return folder


def copy_run(finished_run, tmp_path) -> Path:
    shutil.copytree(finished_run, tmp_path / "run")
    return tmp_path / "run"


def test_a_checkpoint_written_with_other_settings_is_refused_naming_what_differs(tmp_path):
    settings = dict(max_steps=4, checkpoint_every=2)
    train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, **settings), identity={"rank": 1})
    with pytest.raises(CheckpointError, match=r"lr: 0.01 -> 0.001"):
        train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, **settings | {"lr": 1e-3}), identity={"rank": 1})
    with pytest.raises(CheckpointError, match=r"train_items \(the data differ\)"):
        train(AnswerQuestions(), PAIRS[:-1], PAIRS, config(tmp_path, **settings), identity={"rank": 1})
    with pytest.raises(CheckpointError, match=r"run.rank: 1 -> 2"):
        train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, **settings), identity={"rank": 2})

    # Logging settings may change; the finished run is resumed, not trained again.
    again = AnswerQuestions()
    train(again, PAIRS, PAIRS, config(tmp_path, **settings | {"log_every": 2, "tensorboard": True}), identity={"rank": 1})
    assert again.steps_seen == []
    fresh = AnswerQuestions()  # resume=False starts over whatever the checkpoint
    train(fresh, PAIRS, PAIRS, config(tmp_path, **settings | {"lr": 1e-3, "resume": False}), identity={"rank": 2})
    assert fresh.steps_seen == [1, 2, 3, 4]


def test_a_setting_the_saved_run_compared_and_this_code_no_longer_does_is_not_a_difference(tmp_path):
    settings = dict(max_steps=4, checkpoint_every=2)
    train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, **settings), identity={"rank": 1, "routing": "newest"})
    again = AnswerQuestions()
    train(again, PAIRS, PAIRS, config(tmp_path, **settings), identity={"rank": 1})  # "routing" dropped: resumed
    assert again.steps_seen == []
    with pytest.raises(CheckpointError, match=r"run.width: '<unset>' -> 8"):  # one the saved run lacks still counts
        train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, **settings), identity={"rank": 1, "width": 8})


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path):
    algorithm = AnswerQuestions()
    result = train(algorithm, PAIRS, PAIRS, config(tmp_path, max_steps=2, resume=True))
    assert algorithm.steps_seen == [1, 2] and result.steps == 2


def test_a_checkpoint_without_its_state_file_is_reported(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    (run / "checkpoint" / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError, match="trainer_state.json"):
        train(AnswerQuestions(), PAIRS, PAIRS, config(run, max_steps=4, checkpoint_every=2, resume=True))


def test_a_truncated_checkpoint_is_reported(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    weights_file = run / "checkpoint" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot resume from .*checkpoint"):
        train(AnswerQuestions(), PAIRS, PAIRS, config(run, max_steps=4, checkpoint_every=2, resume=True))


def test_a_crash_in_the_middle_of_a_checkpoint_swap_resumes_from_the_previous_checkpoint(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    os.replace(run / "checkpoint", run / "checkpoint.old")
    (run / "checkpoint.tmp").mkdir()  # a half-written newer checkpoint is never read
    algorithm = AnswerQuestions()
    result = train(algorithm, PAIRS, PAIRS, config(run, max_steps=4, checkpoint_every=2, resume=True))
    assert algorithm.steps_seen == [3, 4] and result.steps == 4
    assert sorted(path.name for path in run.iterdir() if path.name.startswith("checkpoint")) == ["checkpoint"]


def test_an_unknown_early_stop_metric_is_named(tmp_path):
    with pytest.raises(KeyError, match="'bleu' is not among the validation metrics \\['accuracy', 'loss'\\]"):
        train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path, max_steps=1, early_stop_metric="bleu"))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="early_stop_mode"):
        TrainConfig(output_dir="out", early_stop_mode="best")
    with pytest.raises(ValueError, match="grad_accumulation"):
        TrainConfig(output_dir="out", grad_accumulation=0)
    with pytest.raises(ValueError, match="plot_validation must be true or false, got 'yes'"):
        TrainConfig(output_dir="out", plot_validation="yes")
    with pytest.raises(ValueError, match="lr_reduction_factor must be between 0 and 1"):
        TrainConfig(output_dir="out", lr_reduction_factor=1.0)
    with pytest.raises(ValueError, match="lr_reductions must not be negative"):
        TrainConfig(output_dir="out", lr_reductions=-1)


def test_processes_that_did_not_join_one_group_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="did not join one group"):
        train(AnswerQuestions(), PAIRS, PAIRS, config(tmp_path))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_cpu_processes_under_accelerate_launch_train_checkpoint_and_resume(tmp_path):
    # `--cpu --num_processes 2` starts a single process (accelerate issue #2741); this is the
    # launch that gives two CPU processes in one gloo group. The toy there has a parameter its
    # loss never uses, which DDP accepts only with find_unused_parameters (the default).
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        str(TOY_SCRIPT), str(tmp_path),
    ]
    environment = os.environ | {
        "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TOY_SCRIPT.parent),
    }
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert finished.returncode == 0, finished.stderr[-4000:]

    checkpoint = tmp_path / "checkpoint"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 8
    assert (checkpoint / "random_states_0.pkl").exists() and (checkpoint / "random_states_1.pkl").exists()
    assert (tmp_path / "best" / "model.safetensors").exists()
    with open(tmp_path / "metrics.csv", newline="") as file:
        logged = list(csv.DictReader(file))
    assert [int(row["step"]) for row in logged if row["train/loss"]] == list(range(1, 9))
    validations = [row for row in logged if row["val/accuracy"]]
    assert [int(row["step"]) for row in validations] == [2, 4, 6, 8]
    # The validation metrics combined over the two processes are those of one process.
    final = WithUnusedParameters()
    load_trained_weights(final, checkpoint)
    final.eval()
    with torch.no_grad():
        losses = [final.validate(final.collate(PAIRS[start : start + 2]))["loss"] for start in range(0, len(PAIRS), 2)]
    assert float(validations[-1]["val/loss"]) == pytest.approx(sum(losses) / len(losses), rel=1e-5)
