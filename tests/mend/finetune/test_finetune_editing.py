"""FT, FT+KL and FT-L on tiny random models: edits land, constraints hold, state is exact."""

import pytest
import torch
from finetune_examples import (
    FAST,
    LOCALITY_PROMPTS,
    OTHER_PROMPT,
    OTHER_TARGET,
    PROMPT,
    TARGET,
    THIRD_PROMPT,
    THIRD_TARGET,
    weights,
)

from mend.finetune import (
    FTConfig,
    FTEditor,
    FTKLConfig,
    FTKLEditor,
    FTLConfig,
    FTLEditor,
)
from mend.finetune.locality import LocalityAnchor


def assert_same_bits(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name].view(torch.int32), second[name].view(torch.int32)), name


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-t5", "tiny-gpt2"])
def test_an_ft_edit_makes_the_target_the_argmax(model_name):
    editor = FTEditor.from_pretrained(model_name, FTConfig(**FAST))
    before = editor.score([PROMPT], [TARGET])[0]
    assert not before.exact_match

    edit_id = editor.add_edit(PROMPT, TARGET)

    after = editor.score([PROMPT], [TARGET])[0]
    assert after.exact_match
    assert after.mean_logprob > before.mean_logprob
    assert editor.edit_ids() == [edit_id]
    assert editor.query(PROMPT).text.startswith(TARGET)


def test_a_batch_is_learned_in_one_run_and_sequential_edits_accumulate():
    editor = FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST))
    batch_ids = editor.add_edits([(PROMPT, TARGET), (OTHER_PROMPT, OTHER_TARGET)])
    assert all(score.exact_match for score in editor.score([PROMPT, OTHER_PROMPT], [TARGET, OTHER_TARGET]))
    after_batch = editor.weight_deltas()

    later_id = editor.add_edit(THIRD_PROMPT, THIRD_TARGET)

    assert editor.edit_ids() == [*batch_ids, later_id]
    assert len(set(editor.edit_ids())) == 3
    fresh = FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST))
    fresh.add_edit(THIRD_PROMPT, THIRD_TARGET)
    # The second run started from the first run's weights, not from the base model's.
    for name, delta in editor.weight_deltas().items():
        assert not torch.equal(delta, fresh.weight_deltas()[name])
        assert not torch.equal(delta, after_batch[name])


def test_only_the_chosen_weights_change():
    editor = FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST))
    before = weights(editor)
    editor.add_edit(PROMPT, TARGET)
    after = weights(editor)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"model.layers.1.mlp.down_proj.weight"}


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-t5"])
def test_ft_l_never_moves_a_weight_further_than_epsilon(model_name):
    epsilon = 1e-3
    editor = FTLEditor.from_pretrained(model_name, FTLConfig(norm_constraint=epsilon, early_stop_nll=None, **FAST))
    unedited = weights(editor)
    editor.add_edits([(PROMPT, TARGET), (OTHER_PROMPT, OTHER_TARGET)])
    editor.add_edit(THIRD_PROMPT, THIRD_TARGET)

    after = weights(editor)
    largest_move = 0.0
    for name, weight in after.items():
        assert torch.all(weight <= unedited[name] + epsilon), name
        assert torch.all(weight >= unedited[name] - epsilon), name
        largest_move = max(largest_move, (weight - unedited[name]).abs().max().item())
    assert largest_move == pytest.approx(epsilon, rel=1e-3)  # the constraint was active
    for delta in editor.weight_deltas().values():
        assert delta.abs().max() <= epsilon


def test_ft_l_stops_early_once_the_edit_is_learned():
    config = FTLConfig(norm_constraint=1.0, early_stop_nll=5.0, steps=200, lr=1e-2)
    editor = FTLEditor.from_pretrained("tiny-llama", config)
    editor.add_edit(PROMPT, TARGET)
    batch = editor.language_model.batch([PROMPT], [TARGET])
    nll = editor.language_model.nll(batch).item()
    assert nll < 5.0
    assert nll > 1.0  # 200 steps at this learning rate would have gone far below


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-t5"])
def test_ft_kl_changes_locality_outputs_less_than_ft(model_name):
    ft = FTEditor.from_pretrained(model_name, FTConfig(**FAST))
    ft_locality = LocalityAnchor(ft.language_model, LOCALITY_PROMPTS)
    ft_kl = FTKLEditor.from_pretrained(model_name, FTKLConfig(kl_weight=10.0, **FAST), locality_prompts=LOCALITY_PROMPTS)

    ft.add_edit(PROMPT, TARGET)
    ft_kl.add_edit(PROMPT, TARGET)

    with torch.no_grad():
        kl_after_ft, kl_after_ft_kl = ft_locality.kl().item(), ft_kl.locality.kl().item()
    assert kl_after_ft > 0
    assert kl_after_ft_kl < 0.5 * kl_after_ft
    assert ft_kl.score([PROMPT], [TARGET])[0].exact_match


def test_reset_restores_every_weight_bit_for_bit():
    editor = FTEditor.from_pretrained("tiny-llama", FTConfig(parameter_pattern="all", layers=None, **FAST))
    unedited = weights(editor)
    editor.add_edits([(PROMPT, TARGET), (OTHER_PROMPT, OTHER_TARGET)])
    editor.add_edit(THIRD_PROMPT, THIRD_TARGET)
    assert any(not torch.equal(unedited[name], weight) for name, weight in weights(editor).items())

    editor.reset()

    assert_same_bits(unedited, weights(editor))
    assert editor.edit_ids() == []
    assert all(not delta.any() for delta in editor.weight_deltas().values())


def test_remove_edit_gives_the_model_edited_without_it():
    editor = FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST))
    first = editor.add_edit(PROMPT, TARGET)
    batch = editor.add_edits([(OTHER_PROMPT, OTHER_TARGET), (THIRD_PROMPT, THIRD_TARGET)])

    editor.remove_edit(first)
    editor.remove_edit(batch[0])

    expected = FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST))
    expected.add_edits([(THIRD_PROMPT, THIRD_TARGET)])
    assert_same_bits(weights(expected), weights(editor))
    assert editor.edit_ids() == [batch[1]]
    with pytest.raises(KeyError, match="no edit"):
        editor.remove_edit(first)


@pytest.mark.parametrize("editor_class, config_class", [(FTEditor, FTConfig), (FTKLEditor, FTKLConfig)])
def test_replaying_the_blocks_below_the_trained_layer_trains_the_same_weights(monkeypatch, editor_class, config_class):
    # fine_tune runs the blocks below the trained layer once (serac.core.lower_blocks); the whole
    # model in every step must end at the same weights.
    extra = {"locality_prompts": LOCALITY_PROMPTS} if editor_class is FTKLEditor else {}
    results = []
    for replay in (True, False):
        if not replay:
            monkeypatch.setattr("mend.finetune.fine_tune.lower_block_states", lambda *args: None)
        editor = editor_class.from_pretrained("tiny-llama", config_class(**FAST, **extra))
        editor.add_edit(PROMPT, TARGET)
        results.append(weights(editor))
    replayed, whole = results
    assert replayed.keys() == whole.keys()
    assert all(torch.allclose(replayed[name], whole[name], atol=1e-6) for name in whole)
