import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_serac import tiny_config

from serac import SERAC
from serac.core.composed_config import split_train_validation
from serac.core.data import load_records
from serac.core.models import load_language_model
from serac.core.records import EditRecord
from serac.core.relation_templates import RelationTemplates, relation_template
from serac.serac.counterfactual import CounterfactualModel
from serac.serac.counterfactual_training import CounterfactualTraining
from serac.serac.train import SERACTraining, _extra_negatives, train_serac
from serac.serac.training_data import (
    counterfactual_examples,
    in_scope_queries,
    look_alike_edit_pairs,
    other_dataset_negatives,
    relation_negatives,
    scope_pairs,
)

FEW_STEPS = {"max_steps": 2, "val_every": 1, "batch_size": 4, "val_batches": 2}


def test_scope_pairs_are_balanced_and_include_hard_negatives():
    records = load_records("zsre", "dev", limit=6)
    hard = [[(i + 1) % 6] for i in range(6)]
    pairs = scope_pairs(records, hard)
    positives = [p for p in pairs if p.in_scope == 1.0]
    assert len(positives) * 2 == len(pairs)
    assert {(p.edit, p.query) for p in positives} >= {(r.prompt, r.rephrases[0]) for r in records}
    negatives = {(p.edit, p.query) for p in pairs if p.in_scope == 0.0}
    neighbour_queries = {(records[0].prompt, q) for q in (records[1].prompt, *records[1].rephrases)}
    assert negatives & neighbour_queries, "a hard negative of the neighbouring edit is used"


def test_counterfactual_examples_answer_dialogue_queries_with_target_replies():
    record = load_records("personality", "dev", limit=1)[0]
    examples = counterfactual_examples([record])
    assert [e.query for e in examples] == list(record.rephrases)
    assert {e.answer for e in examples} == set(record.target_replies)


def test_train_serac_saves_a_calibrated_editor_that_loads(tmp_path):
    records = load_records("zsre", "train", limit=24)
    train_records, val_records = split_train_validation(records, 0.25, seed=0)
    setup = SERACTraining(config=tiny_config(rerank=True), classifier=FEW_STEPS, counterfactual=FEW_STEPS)
    saved = train_serac(setup, train_records, val_records, tmp_path, device="cpu")
    calibration = json.loads((saved / "calibration.json").read_text())
    editor = SERAC.load(saved, device="cpu")
    try:
        assert editor.config.threshold == calibration["threshold"] and 0.0 <= editor.config.threshold <= 1.0
        assert editor.config.embedding_floor == calibration["embedding_floor"] and -1.0 <= editor.config.embedding_floor < 1.0
        assert 0.0 <= calibration["out_of_scope_below_floor"] <= 1.0
        assert editor.edit_ids() == []  # calibration edits are not left in the memory
        assert (tmp_path / "scope_classifier" / "metrics.csv").exists()
        assert (tmp_path / "counterfactual" / "best" / "model.safetensors").exists()
        # The counterfactual model is kept by validation loss: reply exact match is ~0 on dialogue.
        metrics = (tmp_path / "counterfactual" / "metrics.csv").read_text().splitlines()[0]
        assert "val/loss" in metrics.split(",")
    finally:
        editor.close()


def test_a_training_run_resumes_after_a_routing_setting_changed(tmp_path):
    records = load_records("zsre", "train", limit=24)
    train_records, val_records = split_train_validation(records, 0.25, seed=0)
    checkpointed = FEW_STEPS | {"checkpoint_every": 2}
    setup = SERACTraining(config=tiny_config(rerank=True), classifier=checkpointed, counterfactual=checkpointed)
    train_serac(setup, train_records, val_records, tmp_path, device="cpu")
    metrics = (tmp_path / "scope_classifier" / "metrics.csv").read_text()
    # Before routing settings were left out of a run's identity, a changed one refused the checkpoint.
    changed = dataclasses.replace(setup, config=tiny_config(rerank=True, top_k=7, encoder_backend="torch-bf16", ivf_storage="flat"))
    train_serac(changed, train_records, val_records, tmp_path, device="cpu")
    assert (tmp_path / "scope_classifier" / "metrics.csv").read_text() == metrics  # resumed: nothing trained again


def test_training_cli_runs_with_hydra_overrides(tmp_path):
    command = [
        str(Path(sys.executable).parent / "serac-train"),
        "alg=serac_quick", "experiment=zsre", "model=tiny-llama",
        "alg.serac.classifier_backbone=tiny-bert", "alg.train_limit=20", "device=cpu",
        *[f"++alg.{part}.{key}={value}" for part in ("classifier_training", "counterfactual_training") for key, value in FEW_STEPS.items()],
        f"output_dir={tmp_path}", f"hydra.run.dir={tmp_path}/hydra",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert (tmp_path / "editor" / "editor.json").exists()


def test_counterfactual_examples_pair_dialogue_replies_with_contrast_replies():
    record = load_records("personality", "dev", limit=1)[0]
    examples = counterfactual_examples([record])
    assert all(e.contrast in record.contrast_replies for e in examples)
    assert {e.contrast for e in examples} == set(record.contrast_replies)
    assert all(e.contrast == "" for e in counterfactual_examples(load_records("zsre", "dev", limit=2)))


def _train_counterfactual(preference_weight: float, batch_examples, steps: int = 20) -> dict:
    torch.manual_seed(0)
    config = tiny_config()
    counterfactual = CounterfactualModel(load_language_model(config.counterfactual_model, "cpu", config.prompt_format))
    training = CounterfactualTraining(counterfactual, preference_weight=preference_weight)
    batch = training.collate(batch_examples)
    optimizer = torch.optim.Adam(counterfactual.lm.model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss, _ = training(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Measured with the preference term whatever was trained, so both runs report Δ.
    return CounterfactualTraining(counterfactual, preference_weight=1.0).validate(batch)


def test_preference_term_makes_the_counterfactual_model_prefer_target_over_contrast_replies():
    examples = counterfactual_examples(load_records("personality", "dev", limit=1))[:2]
    with_preference = _train_counterfactual(5.0, examples)  # a large weight: the tiny model learns slowly
    nll_only = _train_counterfactual(0.0, examples)
    assert with_preference["preference_success"] > 0.85
    assert with_preference["preference_success"] > nll_only["preference_success"] + 0.2


def test_counterfactual_loss_adds_the_weighted_preference_term():
    config = tiny_config()
    counterfactual = CounterfactualModel(load_language_model(config.counterfactual_model, "cpu", config.prompt_format))
    batch = CounterfactualTraining(counterfactual).collate(counterfactual_examples(load_records("personality", "dev", limit=1))[:2])
    metrics = CounterfactualTraining(counterfactual, preference_weight=0.0).validate(batch)
    assert set(metrics) == {"loss", "nll", "answer_exact_match", "answer_token_accuracy"}
    assert metrics["loss"] == metrics["nll"]
    weighted = CounterfactualTraining(counterfactual, preference_weight=2.0).validate(batch)
    assert weighted["loss"] == pytest.approx(weighted["nll"] + 2.0 * weighted["preference_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="preference_weight"):
        CounterfactualTraining(counterfactual, preference_weight=-1.0)


def test_relation_negatives_ask_about_the_same_subject_with_another_relation_and_the_same_relation_with_another_subject():
    records = load_records("counterfact", "train", limit=400)
    negatives = relation_negatives(records, per_kind=1, seed=0)
    templates = RelationTemplates(records)
    kinds = {"same subject": 0, "same relation": 0}
    for record, queries, template in zip(records, negatives, templates.of_record):
        assert record.prompt not in queries and not set(record.rephrases) & set(queries)
        for query in queries:
            if record.subject in query:  # its subject in another relation's template
                kinds["same subject"] += 1
                assert query.replace(record.subject, "{}", 1) in templates.other_relations(template)
            else:  # another record's prompt with its template
                kinds["same relation"] += 1
                other = next(r for r in records if r.prompt == query)
                assert relation_template(other) == template and other.original_answer != record.original_answer
    assert kinds["same subject"] >= 0.9 * len(records) and kinds["same relation"] >= 0.5 * len(records)


def test_relation_negatives_are_drawn_within_each_data_set_and_not_for_records_that_opt_out():
    counterfact = [dataclasses.replace(r, extra={"dataset": "counterfact"}) for r in load_records("counterfact", "train", limit=200)]
    zsre = [dataclasses.replace(r, extra={"dataset": "zsre", "relation_negatives": False}) for r in load_records("zsre", "train", limit=50)]
    negatives = relation_negatives(counterfact + zsre, per_kind=1, seed=0)
    assert negatives[: len(counterfact)] == relation_negatives(counterfact, per_kind=1, seed=0)  # zsRE templates change nothing
    assert all(queries == [] for queries in negatives[len(counterfact):])
    # Untagged zsRE records would get "another relation" of their own questions' templates.
    assert any(relation_negatives(load_records("zsre", "train", limit=50), per_kind=1, seed=0))


def test_relation_negatives_are_all_used_and_pairs_stay_balanced():
    records = load_records("counterfact", "train", limit=50)
    extra = relation_negatives(records, per_kind=2, seed=0)
    pairs = scope_pairs(records, [[] for _ in records], extra_negatives=extra)
    negatives = {(p.edit, p.query) for p in pairs if p.in_scope == 0.0}
    assert {(r.prompt, q) for r, queries in zip(records, extra) for q in queries} <= negatives
    assert sum(p.in_scope for p in pairs) * 2 == len(pairs)


def test_look_alike_edits_are_stored_edits_of_the_subject_in_another_relation_asked_with_its_rephrase():
    """The classifier is not symmetric: every other negative holds the record's own prompt as the
    stored edit, while at scale a rephrase meets stored edits of its subject in other relations."""
    counterfact = [dataclasses.replace(r, extra={"dataset": "counterfact"}) for r in load_records("counterfact", "train", limit=300)]
    zsre = [dataclasses.replace(r, extra={"dataset": "zsre", "relation_negatives": False}) for r in load_records("zsre", "train", limit=30)]
    pairs = look_alike_edit_pairs(counterfact + zsre, per_edit=2, seed=0)
    templates = RelationTemplates(counterfact)
    by_rephrase = {(q, r.prompt): (r, t) for r, t in zip(counterfact, templates.of_record) for q in r.rephrases}
    negatives = [p for p in pairs if p.in_scope == 0.0]
    assert len(negatives) * 2 == len(pairs) and len(negatives) >= 1.8 * sum(t is not None for t in templates.of_record)
    positives = {(p.edit, p.query) for p in pairs if p.in_scope == 1.0}
    for pair in negatives:
        record, template = next(by_rephrase[key] for key in by_rephrase if key[0] == pair.query and (key[1], pair.query) in positives)
        assert pair.edit.replace(record.subject, "{}", 1) in templates.other_relations(template)
    assert not {p.query for p in pairs} & {q for r in zsre for q in r.rephrases}  # zsRE opts out
    assert look_alike_edit_pairs(counterfact, per_edit=0) == []


def _tagged(dataset: str, prompt: str, subject: str, target: str, original: str) -> EditRecord:
    return EditRecord(prompt=prompt, target=target, subject=subject, original_answer=original, extra={"dataset": dataset})


def test_other_dataset_negatives_put_a_subject_in_the_other_data_sets_templates_of_other_relations():
    cloze = [
        _tagged("counterfact", "Anna Berg speaks", "Anna Berg", "French", "German"),
        _tagged("counterfact", "Rome is located in", "Rome", "Japan", "Italy"),
    ]
    questions = [
        _tagged("zsre", "Which language does Ole Dahl speak?", "Ole Dahl", "German", "Danish"),  # answered like "{} speaks"
        _tagged("zsre", "When was Ole Dahl born?", "Ole Dahl", "1950", "1948"),
    ]
    negatives = other_dataset_negatives(cloze + questions, per_edit=5, seed=0)
    # A template sharing an answer with the subject's own relation is never another relation.
    assert negatives[0] == ["When was Anna Berg born?"]
    assert sorted(negatives[1]) == ["When was Rome born?", "Which language does Rome speak?"]
    assert negatives[2] == ["Ole Dahl is located in"]
    assert sorted(negatives[3]) == ["Ole Dahl is located in", "Ole Dahl speaks"]
    assert [len(q) for q in other_dataset_negatives(cloze + questions, per_edit=1, seed=0)] == [1, 1, 1, 1]
    # One data set: no other templates to draw from.
    assert other_dataset_negatives(cloze, per_edit=5, seed=0) == [[], []]


def test_the_counterfact_zsre_preset_adds_other_dataset_negatives_to_the_training_pairs(tmp_path):
    cloze = [dataclasses.replace(r, extra={"dataset": "counterfact"}) for r in load_records("counterfact", "train", limit=30)]
    questions = [dataclasses.replace(r, extra={"dataset": "zsre", "relation_negatives": False}) for r in load_records("zsre", "train", limit=30)]
    records = cloze + questions
    setup = SERACTraining(config=tiny_config(rerank=True), relation_negatives_per_edit=1, other_dataset_negatives_per_edit=2)
    extra = _extra_negatives(setup, records)
    across = other_dataset_negatives(records, 2, setup.seed)
    assert all(set(theirs) <= set(queries) for queries, theirs in zip(extra, across))
    assert sum(map(len, across)) >= len(records)  # nearly every record gets some
    assert _extra_negatives(dataclasses.replace(setup, relation_negatives_per_edit=0, other_dataset_negatives_per_edit=0), records) is None


def test_extra_negatives_come_on_top_of_the_mined_neighbours_not_instead_of_them():
    records = load_records("zsre", "dev", limit=6)
    hard = [[(i + 1) % 6] for i in range(6)]
    extra = [[f"{r.subject} speaks the language", f"{r.subject} was born in", f"{r.subject} plays"] for r in records]
    pairs = scope_pairs(records, hard, extra_negatives=extra)
    negatives = {(p.edit, p.query) for p in pairs if p.in_scope == 0.0}
    assert {(r.prompt, q) for r, queries in zip(records, extra) for q in queries} <= negatives
    for record, queries, neighbour in zip(records, extra, hard):
        usual = {query for edit, query in negatives if edit == record.prompt} - set(queries)
        assert len(usual) == len(in_scope_queries(record))  # as many as without extras
        mined = set(in_scope_queries(records[neighbour[0]]))
        assert usual <= mined | set(record.locality_prompts)
    assert any({query for _, query in negatives} & set(in_scope_queries(records[n[0]])) for n in hard)
    assert sum(p.in_scope for p in pairs) * 2 == len(pairs)
