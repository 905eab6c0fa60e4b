"""The forgetting probe on tiny models and a tiny data folder, and the collapse point on hand-made rows."""

import json
import math

import pytest
import torch

from mend.finetune import FTConfig, FTEditor
from serac import SERAC
from serac.cache import CacheEditor
from serac.core import metrics
from serac.core.data import data_dir, load_records
from serac.core.forgetting import (
    CollapseThresholds,
    ForgettingProbe,
    ForgettingSettings,
    collapse_point,
    collapse_reasons,
)
from serac.core.layer_statistics import TextSample, sample_texts
from serac.core.records import EditRequest
from serac.serac.config import SERACConfig

FACTS = [
    ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux", "French", "English"),
    ("The Eiffel Tower is located in", "The Eiffel Tower", "Paris", "London"),
    ("Hamlet was written by", "Hamlet", "William Shakespeare", "Cairo"),
    ("The Nile flows through", "The Nile", "Cairo", "Brazil"),
    ("The capital of France is", "France", "Paris", "Cairo"),
]
TOPICS = ["jazz", "football", "the weather"]
SETTINGS = dict(heldout_texts=5, facts=3, generation_prompts=2, generation_tokens=8)


def reply(topic: str, trait: str, rank: int) -> str:
    return f"I think {topic} is wonderful, says my {trait} side, reply {rank}."


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    (folder / "counterfact").mkdir(parents=True)
    (folder / "personality").mkdir()
    facts = [
        {
            "case_id": index, "prompt": prompt, "subject": subject, "target_new": new, "ground_truth": true,
            "rephrase_prompt": prompt, "locality_prompt": "What language is spoken in Brazil?", "locality_ground_truth": "Portuguese",
        }
        for index, (prompt, subject, true, new) in enumerate(FACTS)
    ]
    (folder / "counterfact" / "val.json").write_text(json.dumps(facts))
    topics = [{"ent": topic, **{trait: [reply(topic, trait, rank) for rank in (1, 2)] for trait in ("extraversion", "agreeableness", "neuroticism")}} for topic in TOPICS]
    (folder / "personality" / "dev.json").write_text(json.dumps(topics))
    return str(folder)


@pytest.fixture
def probe(data):
    return ForgettingProbe.build(ForgettingSettings(**SETTINGS, data_dir=data))


def ft_editor(tiny_lm):
    # Every weight is trainable, so a delta can wreck the whole model (the tied embeddings make the logits extreme).
    return FTEditor(tiny_lm("tiny-llama"), FTConfig(model_name="tiny-llama", parameter_pattern="all", layers=None))


# The probe


def test_the_probe_takes_the_last_facts_their_first_prompts_and_replies_round_robin_over_topics(probe):
    assert [fact.prompt for fact in probe.facts] == [prompt for prompt, *_ in FACTS[-3:]]
    assert probe.generation_prompts == (FACTS[2][0], FACTS[3][0])
    # Each record's replies start with its target trait, which rotates: extraversion, agreeableness, neuroticism.
    assert probe.heldout_texts == (
        reply("jazz", "extraversion", 1), reply("football", "agreeableness", 1), reply("the weather", "neuroticism", 1),
        reply("jazz", "extraversion", 2), reply("football", "agreeableness", 2),
    )


def test_a_probe_larger_than_the_data_is_refused(data):
    with pytest.raises(ValueError, match="asks for 7 facts but the data holds only 5"):
        ForgettingProbe.build(ForgettingSettings(heldout_texts=5, facts=7, generation_prompts=2, data_dir=data))
    with pytest.raises(ValueError, match="asks for 19 held-out texts but the data holds only 18"):
        ForgettingProbe.build(ForgettingSettings(heldout_texts=19, facts=3, generation_prompts=2, data_dir=data))


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(heldout_texts=0), "heldout_texts must be an int from 1 to 2000"),
        (dict(facts=10**6), "facts must be an int from 1 to 2000"),
        (dict(facts=3, generation_prompts=4), r"generation_prompts \(drawn from the probe facts\) must be an int from 1 to 3"),
        (dict(generation_tokens=True), "generation_tokens must be an int"),
        (dict(min_trigram_repeats=1), "min_trigram_repeats must be an int from 2 to 100"),
        (dict(data_dir=3), "data_dir must be a path string or None"),
    ],
)
def test_bad_settings_are_refused_by_name(bad, message):
    with pytest.raises(ValueError, match=message):
        ForgettingSettings(**bad)


def test_edits_about_a_probe_fact_are_refused(probe):
    probe.check_untouched([EditRequest(FACTS[0][0], "German", FACTS[0][1])])  # not among the last three facts
    with pytest.raises(ValueError, match="edit 1 .* is about a fact of the forgetting probe"):
        probe.check_untouched([EditRequest(FACTS[0][0], "German"), EditRequest("Where is Hamlet set?", "Denmark", "Hamlet")])
    with pytest.raises(ValueError, match="edit 0"):
        probe.check_untouched(load_records("counterfact", "val", probe.settings.data_dir)[-1:])


def test_the_heldout_sample_shares_no_text_with_the_statistics_sample_or_the_edits():
    if not (data_dir() / "personality" / "dev.json").exists():
        pytest.skip("the shared data folder is not here")
    heldout = set(ForgettingProbe.build(ForgettingSettings(heldout_texts=1800, facts=100)).heldout_texts)
    assert len(heldout) == 1800
    assert heldout.isdisjoint(sample_texts(TextSample()))
    edited = {text for dataset, split in (("counterfact", "train"), ("counterfact", "val"), ("zsre", "train"), ("zsre", "dev"))
              for record in load_records(dataset, split) for text in (record.prompt, record.target, *record.rephrases)}
    assert heldout.isdisjoint(edited)


# Measures through the editors


def test_measures_are_finite_deterministic_and_unchanged_by_an_editor_with_no_edits(probe, tiny_lm):
    editor = ft_editor(tiny_lm)
    first = probe.measure(editor)
    assert set(first) == {"heldout_perplexity", "unedited_true_over_false", "generation_fluency", "repetitive_generations"}
    assert all(math.isfinite(value) for value in first.values())
    assert probe.measure(editor) == first
    # The editor with no edits is the model itself.
    base = tiny_lm("tiny-llama")
    assert first["heldout_perplexity"] == pytest.approx(metrics.perplexity(base.text_scores(list(probe.heldout_texts))), rel=1e-6)


def test_a_badly_perturbed_model_has_a_higher_heldout_perplexity_and_collapses(probe, tiny_lm):
    editor = ft_editor(tiny_lm)
    unedited = probe.measure(editor)
    generator = torch.Generator().manual_seed(0)
    editor.set_deltas({name: 3.0 * torch.randn(delta.shape, generator=generator) for name, delta in editor.weight_deltas().items()})
    wrecked = probe.measure(editor)
    assert wrecked["heldout_perplexity"] > 2 * unedited["heldout_perplexity"]
    assert collapse_point([(0, unedited), (10, wrecked)]) == 10
    editor.reset()
    assert probe.measure(editor) == unedited


def test_memory_editors_score_heldout_text_with_their_base_model(probe, tiny_lm, tmp_path):
    texts = list(probe.heldout_texts)
    cache = CacheEditor(tiny_lm("tiny-llama"))
    expected = [score.logprobs for score in tiny_lm("tiny-llama").text_scores(texts)]
    assert all(torch.allclose(a.logprobs, b) for a, b in zip(cache.text_scores(texts), expected))
    config = SERACConfig(model_name="tiny-llama", counterfactual_model="tiny-gpt2", classifier_backbone="tiny-bert", prompt_format="plain")
    serac = SERAC.from_pretrained(config, device="cpu", memory_path=tmp_path / "memory")
    try:
        assert all(torch.allclose(a.logprobs, b) for a, b in zip(serac.text_scores(texts), expected))
        assert all(math.isfinite(value) for value in probe.measure(serac).values())
    finally:
        serac.close()
        cache.close()


# The collapse point, on hand-made rows


def row(perplexity=10.0, fluency=5.0, repetitive=0.1):
    return {"heldout_perplexity": perplexity, "generation_fluency": fluency, "repetitive_generations": repetitive,
            "unedited_true_over_false": 0.8}


def test_no_collapse_is_none():
    assert collapse_point([(0, row()), (10, row(19.9, 4.1, 0.3)), (100, row(15.0, 4.5, 0.2))]) is None


def test_the_first_checkpoint_over_a_threshold_is_the_collapse_point_whatever_the_row_order():
    rows = [(1000, row(perplexity=50.0)), (0, row()), (10, row(perplexity=19.0)), (100, row(perplexity=20.0))]
    assert collapse_point(rows) == 100
    assert collapse_point(rows, CollapseThresholds(perplexity_ratio=5.0)) == 1000


def test_fluency_collapses_below_its_share_of_the_unedited_fluency():
    rows = [(0, row()), (10, row(fluency=4.0)), (100, row(fluency=3.9))]
    assert collapse_point(rows) == 100  # 4.0 is 0.8 of 5.0: not below it
    assert collapse_reasons(row(), row(fluency=3.9), CollapseThresholds()) == ["generation_fluency"]


def test_repetition_collapses_when_its_share_rises_enough():
    # 0.35 - 0.1 is 0.2499... in floats: seven looping generations of twenty against two is still a rise of 0.25.
    rows = [(0, row(repetitive=0.1)), (10, row(repetitive=0.3)), (100, row(repetitive=0.35))]
    assert collapse_point(rows) == 100
    assert collapse_point(rows, CollapseThresholds(repetition_rise=0.5)) is None


def test_a_measure_that_is_no_longer_finite_is_a_collapse():
    assert collapse_point([(0, row()), (1, row(perplexity=math.nan))]) == 1
    assert collapse_reasons(row(), row(perplexity=math.inf, fluency=math.nan), CollapseThresholds()) == [
        "heldout_perplexity", "generation_fluency"
    ]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([(10, row())], "give a row at T = 0"),
        ([(0, row()), (10, row()), (10, row())], "two rows have the same number of edits"),
        ([(0, row()), (-1, row())], "each row's number of edits must be an int >= 0"),
        ([(0, row(perplexity=math.inf))], "the unedited measures must be finite"),
    ],
)
def test_bad_rows_are_refused(rows, message):
    with pytest.raises(ValueError, match=message):
        collapse_point(rows)


def test_bad_thresholds_are_refused_by_name():
    with pytest.raises(ValueError, match="perplexity_ratio must be a finite number from 1.0"):
        CollapseThresholds(perplexity_ratio=0.5)
    with pytest.raises(ValueError, match="fluency_ratio"):
        CollapseThresholds(fluency_ratio=1.5)
