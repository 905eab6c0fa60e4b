"""MEND's training objective through the shared training loop, on a tiny model."""

import copy
import json
from pathlib import Path

import pytest
import torch

from mend.mend import MENDConfig, MENDEditor
from mend.mend.editor_network_training import DIALOGUE_PAIRS, MENDTraining, training_pairs
from serac.core.data import load_records
from serac.core.records import EditRecord
from serac.core.registry import trainer
from serac.core.train_config import TrainConfig
from serac.core.training import train

FACTS = [
    ("What is the capital of France?", "Which city is the capital of France?", "the Nile"),
    ("Who wrote Hamlet?", "Hamlet was written by whom?", "the Eiffel Tower"),
    ("Which river flows through Cairo?", "What river runs through Cairo?", "William Shakespeare"),
    ("What language is spoken in Brazil?", "Which language do people in Brazil speak?", "Paris"),
]
LOCALITY = [("In which country is the Eiffel Tower located?", "France"), ("what year did the war end?", "1945")]
RECORDS = [
    EditRecord(prompt, target, rephrases=(rephrase,), locality_prompts=(LOCALITY[i % 2][0],),
               locality_answers=(LOCALITY[i % 2][1],), source=f"fact-{i}")
    for i, (prompt, rephrase, target) in enumerate(FACTS)
]


def test_a_few_training_steps_reduce_the_loss(tiny_lm, tmp_path):
    lm = tiny_lm("tiny-llama")
    config = MENDConfig(model_name="tiny-llama", rank=16, layers=[-2, -1], edit_lr_lr=1e-3)
    training = MENDTraining(lm, config, lr=1e-3)
    unedited = {name: value.clone() for name, value in lm.model.state_dict().items()}
    batch = training.collate(RECORDS)
    with torch.no_grad():
        before = training.eval().validate(batch)

    run = TrainConfig(output_dir=str(tmp_path), lr=1e-3, batch_size=4, max_steps=15, val_every=15, log_every=5)
    result = train(training, RECORDS, RECORDS, run)

    with torch.no_grad():
        after = training.eval().validate(batch)
    assert result.steps == 15
    assert after["loss"] < before["loss"]
    assert after["loss_edit"] < before["loss_edit"]
    assert training.transform.edit_lrs.mean() > config.edit_lr  # alpha learns too
    assert all(torch.equal(value, unedited[name]) for name, value in lm.model.state_dict().items())  # base model untouched
    assert not lm.model.training  # its dropout stays off
    assert all(parameter.grad is None for parameter in lm.model.parameters())


def test_the_gradient_reaches_the_editor_networks_only(tiny_lm):
    lm = tiny_lm("tiny-gpt2")
    training = MENDTraining(lm, MENDConfig(model_name="tiny-gpt2", rank=8), lr=1e-4).train()
    loss, logs = training(training.collate(RECORDS[:2]))
    loss.backward()
    assert set(logs) == {"loss_edit", "loss_locality", "edit_lr"}
    assert training.transform.edit_lrs_unscaled.grad.abs().sum() > 0
    assert all(network.u1.grad.abs().sum() > 0 for network in training.transform.networks.values())
    assert all(parameter.grad is None for parameter in lm.model.parameters())
    assert logs["loss_locality"] > -1e-6  # a KL divergence


def test_records_without_locality_answers_are_refused(tiny_lm):
    training = MENDTraining(tiny_lm("tiny-gpt2"), MENDConfig(model_name="tiny-gpt2", rank=4), lr=1e-4)
    with pytest.raises(ValueError, match="'fact-0' has no locality answers"):
        training.collate([EditRecord("Who wrote Hamlet?", "Paris", locality_prompts=("What is 1945?",), source="fact-0")])


def test_train_from_config_saves_a_loadable_trained_editor(tmp_path):
    (tmp_path / "data" / "zsre").mkdir(parents=True)
    rows = [
        {"subject": "x", "src": prompt, "rephrase": rephrase, "alt": target, "answers": ["y"],
         "loc": "nq question: " + LOCALITY[i % 2][0], "loc_ans": LOCALITY[i % 2][1]}
        for i, (prompt, rephrase, target) in enumerate(FACTS * 2)
    ]
    (tmp_path / "data" / "zsre" / "train.json").write_text(json.dumps(rows))
    config = {
        "model": {"name": "tiny-gpt2", "prompt_format": "plain"},
        "alg": {"name": "mend", "mend": {"rank": 4}, "training": {"lr": 1e-3, "batch_size": 2, "max_steps": 2, "val_every": 2}},
        "experiment": {"dataset": "zsre", "train_split": "train", "validation_fraction": 0.25},
        "data_dir": str(tmp_path / "data"),
        "seed": 0,
    }
    saved = trainer("mend")(config, tmp_path / "run")
    editor = MENDEditor.load(saved)
    assert not editor.transform.training
    assert any(network.normalizer.count > 0 for network in editor.transform.networks.values())
    assert isinstance(editor.add_edit("Who wrote Hamlet?", "Paris"), str)


def test_dialogue_records_train_on_question_reply_pairs(tiny_lm):
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "convsent_small.json"
    records = load_records("convsent", str(fixture))[:2]
    edit, in_scope, locality = training_pairs(records[0])
    assert edit == (records[0].rephrases[0], records[0].target_replies[0])
    assert len(in_scope) == len(locality) == DIALOGUE_PAIRS
    assert all(question in records[0].rephrases[1:] and reply in records[0].target_replies for question, reply in in_scope)
    assert all(question in records[0].locality_prompts for question, _ in locality)
    training = MENDTraining(tiny_lm("tiny-llama"), MENDConfig(model_name="tiny-llama", rank=4), lr=1e-4).train()
    loss, _ = training(training.collate(records))
    loss.backward()
    assert torch.isfinite(loss) and all(n.u1.grad is not None for n in training.transform.networks.values())


def test_validation_reports_edits_rephrases_locality_both_ways_and_every_step_size(tiny_lm):
    lm = tiny_lm("tiny-llama")
    training = MENDTraining(lm, MENDConfig(model_name="tiny-llama", rank=4, layers=[-1]), lr=1e-4).eval()
    with torch.no_grad():
        result = training.validate(training.collate(RECORDS))
    expected = {
        "loss", "loss_edit", "loss_locality", "edit_success", "edit_token_accuracy", "rephrase_success",
        "rephrase_token_accuracy", "rephrase_success_before", "drawdown", "locality_token",
    } | {f"alpha/{name}" for name in training.module_names}
    assert set(result) == expected
    assert all(0 <= result[name] <= 1 for name in ("edit_success", "drawdown", "locality_token"))
    assert result[f"alpha/{training.module_names[0]}"] == pytest.approx(1e-4)


def test_the_locality_kl_covers_the_answer_or_the_whole_locality_input(tiny_lm):
    lm = tiny_lm("tiny-gpt2")
    batch = lm.batch([prompt for prompt, _ in LOCALITY], [answer for _, answer in LOCALITY])
    _, labels = lm.target_logits(batch)
    masks = {
        positions: MENDTraining(lm, MENDConfig(model_name="tiny-gpt2", rank=4, locality_positions=positions), lr=1e-4)
        ._locality_mask(batch, labels)
        for positions in ("answer", "input")
    }
    assert torch.equal(masks["answer"], labels != -100)
    assert torch.equal(masks["input"], batch["attention_mask"][:, 1:].bool())
    assert (masks["input"] & masks["answer"]).sum() == masks["answer"].sum() < masks["input"].sum()
    with pytest.raises(ValueError, match="locality_positions must be one of"):
        MENDConfig(model_name="tiny-gpt2", locality_positions="all")


@pytest.mark.parametrize("locality_positions", ["answer", "input"])
def test_replaying_the_unedited_blocks_changes_neither_the_loss_nor_its_gradient(tiny_lm, monkeypatch, locality_positions):
    # Training runs the blocks below the edited ones once per input and keeps their outputs
    # (serac.core.lower_blocks); without them the whole model runs in every pass: the same loss and gradient.
    lm = tiny_lm("tiny-llama")
    config = MENDConfig(model_name="tiny-llama", rank=8, layers=[-1], locality_positions=locality_positions)
    transform = MENDTraining(lm, config, lr=1e-4).transform
    results = []
    for replay in ("computed", "kept", None):
        # A fresh copy each time: a training forward moves the networks' running normalisation.
        training = MENDTraining(lm, config, lr=1e-4, transform=copy.deepcopy(transform)).train()
        batch = training.collate(RECORDS[:2])
        if replay == "kept":
            with torch.no_grad():
                training(batch)
            assert len(training.lower_states) == 6  # 2 edits, 2 rephrases, 2 locality inputs
            training.transform.load_state_dict(transform.state_dict())
        if replay is None:
            monkeypatch.setattr(training.lower_states, "states", lambda batch: None)
        loss, _ = training(batch)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in training.transform.parameters() if p.grad is not None]))
    full_loss, full_grads = results[-1]
    assert len(full_grads) > 0
    for loss, grads in results[:-1]:
        assert torch.allclose(loss, full_loss, atol=1e-6)
        assert len(grads) == len(full_grads)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, full_grads))
