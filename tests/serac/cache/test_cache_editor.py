"""The cache editor on tiny models: routing, scoring convention, persistence and bad input."""

import json

import pytest
import torch

from index import EncoderMismatchError
from serac.cache import CacheConfig, CacheEditor
from serac.cache.editor import NO_TOKEN
from serac.core.registry import editor_class
from serac.core.saving import NotASavedEditorError, saved_editor_name

PROMPT, TARGET = "What is the capital of France?", "Rome"
OTHER_PROMPT, OTHER_TARGET = "Who wrote Hamlet?", "Ada Lovelace"
FAR_PROMPT = "The quick brown fox jumps over the lazy dog."
# Small enough that only the edit prompt itself (distance ~0) is routed on the tiny models.
EXACT = CacheConfig(epsilon=1e-3)


@pytest.fixture
def editor():
    editor = CacheEditor.from_pretrained("tiny-llama", EXACT)
    yield editor
    editor.close()


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-gpt2", "tiny-t5"])
def test_an_edit_prompt_is_answered_from_the_cache(model_name):
    editor = CacheEditor.from_pretrained(model_name, EXACT)
    try:
        edit_id, other_id = editor.add_edits([(PROMPT, TARGET), (OTHER_PROMPT, OTHER_TARGET)])
        result, other = editor.query_batch([PROMPT, OTHER_PROMPT])
        assert (result.text, result.routed, result.edit_id) == (TARGET, True, edit_id)
        assert result.scope_score == pytest.approx(0.0, abs=1e-3)
        assert (other.text, other.edit_id) == (OTHER_TARGET, other_id)
        [score] = editor.score([PROMPT], [TARGET])
        assert score.exact_match and torch.all(score.logprobs == 0)
    finally:
        editor.close()


def test_a_routed_prompt_asked_about_another_target_predicts_the_cached_answer(editor):
    editor.add_edit(PROMPT, TARGET)
    longer, shorter = editor.score([PROMPT, PROMPT], [f"{TARGET} and Paris and Berlin", "R"])
    [cached] = editor.score([PROMPT], [TARGET])
    cached_ids = cached.predicted_ids
    assert torch.equal(longer.predicted_ids[: len(cached_ids)], cached_ids)
    assert torch.all(longer.predicted_ids[len(cached_ids) :] == NO_TOKEN)
    assert torch.equal(shorter.predicted_ids, cached_ids[: len(shorter.target_ids)])
    assert not longer.exact_match
    # A prefix of the cached answer matches, as it would for a teacher-forced model: where an answer ends is not scored.
    assert shorter.exact_match
    correct = longer.predicted_ids == longer.target_ids
    assert torch.all(longer.logprobs[correct] == 0) and torch.all(longer.logprobs[~correct] == float("-inf"))


def test_far_prompts_are_answered_by_the_base_model(editor):
    unedited_answer = editor.query(FAR_PROMPT).text
    [unedited_score] = editor.score([FAR_PROMPT], ["jumps"])
    editor.add_edit(PROMPT, TARGET)

    result = editor.query(FAR_PROMPT)
    assert not result.routed and result.edit_id is None and result.text == unedited_answer
    assert result.scope_score > editor.config.epsilon  # the distance to the nearest edit
    [score] = editor.score([FAR_PROMPT], ["jumps"])
    assert torch.equal(score.predicted_ids, unedited_score.predicted_ids)
    assert torch.allclose(score.logprobs, unedited_score.logprobs)


def test_a_wider_epsilon_routes_nearby_prompts(editor):
    editor.add_edit(PROMPT, TARGET)
    distance = editor.query("What is the capital of Brazil?").scope_score
    editor.configure(epsilon=distance * 1.01)
    assert editor.query("What is the capital of Brazil?").text == TARGET


def test_remove_and_reset_forget_edits(editor):
    edit_id, other_id = editor.add_edits([(PROMPT, TARGET), (OTHER_PROMPT, OTHER_TARGET)])
    editor.remove_edit(edit_id)
    assert editor.edit_ids() == [other_id]
    assert not editor.query(PROMPT).routed and editor.query(OTHER_PROMPT).routed
    editor.reset()
    assert editor.edit_ids() == [] and not editor.query(OTHER_PROMPT).routed


def test_a_saved_editor_reloads_and_answers_identically(tmp_path, editor):
    editor.add_edits([(PROMPT, TARGET), (OTHER_PROMPT, OTHER_TARGET)])
    editor.save(tmp_path / "saved")
    assert saved_editor_name(tmp_path / "saved") == "cache"

    loaded = editor_class("cache").load(tmp_path / "saved")
    try:
        assert type(loaded) is CacheEditor and loaded.config == editor.config
        assert loaded.edit_ids() == editor.edit_ids()
        prompts = [PROMPT, OTHER_PROMPT, FAR_PROMPT]
        assert loaded.query_batch(prompts) == editor.query_batch(prompts)
        for before, after in zip(editor.score(prompts, [TARGET] * 3), loaded.score(prompts, [TARGET] * 3)):
            assert torch.equal(before.predicted_ids, after.predicted_ids)
            assert torch.equal(before.logprobs, after.logprobs)
        loaded.reset()  # works on a copy: the saved folder keeps its edits
    finally:
        loaded.close()
    reloaded = CacheEditor.load(tmp_path / "saved")
    assert len(reloaded.edit_ids()) == 2
    reloaded.close()


def test_a_memory_of_another_model_is_refused(tmp_path, editor):
    editor.add_edit(PROMPT, TARGET)
    editor.save(tmp_path / "saved")
    config_file = tmp_path / "saved" / "editor.json"
    body = json.loads(config_file.read_text())
    body["config"]["model_name"] = "tiny-gpt2"  # same hidden size, other weights
    config_file.write_text(json.dumps(body))
    with pytest.raises(EncoderMismatchError):
        CacheEditor.load(tmp_path / "saved")


def test_bad_input_gets_clear_errors(tmp_path, editor):
    with pytest.raises(TypeError, match="prompt"):
        editor.query(42)
    with pytest.raises(ValueError, match="empty"):
        editor.query("   ")
    with pytest.raises(TypeError, match="pair"):
        editor.add_edits([(PROMPT,)])
    with pytest.raises(ValueError, match="2 prompts but 1 targets"):
        editor.score([PROMPT, PROMPT], [TARGET])
    with pytest.raises(ValueError, match="max_new_tokens"):
        editor.query(PROMPT, max_new_tokens=0)
    with pytest.raises(KeyError):
        editor.remove_edit("not-an-id")
    with pytest.raises(KeyError):
        editor.remove_edit("12345")
    with pytest.raises(ValueError, match="epsilon"):
        CacheConfig(epsilon=-1.0)
    with pytest.raises(ValueError, match="fixed"):
        editor.configure(model_name="tiny-gpt2")
    with pytest.raises(NotASavedEditorError):
        CacheEditor.load(tmp_path)
