"""Saving, loading, building from configs, and clear errors for bad input."""

import json

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
from serac.core.registry import editor_class
from serac.core.saving import NotASavedEditorError, saved_editor_name


@pytest.mark.parametrize(
    ("editor_type", "config", "model_name"),
    [
        (FTEditor, FTConfig(**FAST), "tiny-llama"),
        (FTEditor, FTConfig(**FAST), "tiny-t5"),
        (FTKLEditor, FTKLConfig(locality_prompts=LOCALITY_PROMPTS, **FAST), "tiny-llama"),
        (FTLEditor, FTLConfig(norm_constraint=1e-3, **FAST), "tiny-gpt2"),
    ],
)
def test_a_saved_editor_reloads_identically(tmp_path, editor_type, config, model_name):
    editor = editor_type.from_pretrained(model_name, config)
    editor.add_edits([(PROMPT, TARGET), (OTHER_PROMPT, OTHER_TARGET)])
    editor.add_edit(THIRD_PROMPT, THIRD_TARGET)
    editor.save(tmp_path / "saved")

    assert {path.name for path in (tmp_path / "saved").iterdir()} == {"editor.json", "edits.json", "weight_deltas.safetensors"}
    assert saved_editor_name(tmp_path / "saved") == editor_type.name
    loaded = editor_class(editor_type.name).load(tmp_path / "saved")

    assert type(loaded) is editor_type
    assert loaded.config == editor.config
    assert loaded.edit_ids() == editor.edit_ids()
    original, reloaded = weights(editor), weights(loaded)
    for name in original:
        assert torch.equal(original[name].view(torch.int32), reloaded[name].view(torch.int32)), name
    prompts, targets = [PROMPT, OTHER_PROMPT, THIRD_PROMPT], [TARGET, OTHER_TARGET, THIRD_TARGET]
    for before, after in zip(editor.score(prompts, targets), loaded.score(prompts, targets)):
        assert torch.equal(before.logprobs, after.logprobs)
    assert loaded.query(PROMPT) == editor.query(PROMPT)


def test_a_loaded_editor_can_still_remove_and_add_edits(tmp_path):
    editor = FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST))
    first, second = editor.add_edit(PROMPT, TARGET), editor.add_edit(OTHER_PROMPT, OTHER_TARGET)
    editor.save(tmp_path)
    loaded = FTEditor.load(tmp_path)

    loaded.remove_edit(first)
    editor.remove_edit(first)
    assert loaded.edit_ids() == editor.edit_ids() == [second]
    for name, delta in editor.weight_deltas().items():
        assert torch.equal(delta, loaded.weight_deltas()[name])
    third = loaded.add_edit(THIRD_PROMPT, THIRD_TARGET)
    assert loaded.edit_ids() == [second, third]


def test_loading_something_else_fails_clearly(tmp_path):
    with pytest.raises(NotASavedEditorError, match="no editor.json"):
        FTEditor.load(tmp_path)
    FTLEditor.from_pretrained("tiny-llama", FTLConfig(**FAST)).save(tmp_path / "ft_l")
    with pytest.raises(NotASavedEditorError, match="'ft_l' editor, not 'ft'"):
        FTEditor.load(tmp_path / "ft_l")
    (tmp_path / "ft_l" / "weight_deltas.safetensors").unlink()
    with pytest.raises(NotASavedEditorError, match="weight_deltas.safetensors is missing"):
        FTLEditor.load(tmp_path / "ft_l")
    FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST)).save(tmp_path / "ft")
    body = json.loads((tmp_path / "ft" / "editor.json").read_text())
    body["config"]["unknown_option"] = 1
    (tmp_path / "ft" / "editor.json").write_text(json.dumps(body))
    with pytest.raises(NotASavedEditorError, match="does not fit FTConfig"):
        FTEditor.load(tmp_path / "ft")


def test_the_editors_are_registered_and_build_from_cli_configs():
    model = {"name": "tiny-llama", "prompt_format": "plain"}
    for name, editor_type in (("ft", FTEditor), ("ft_kl", FTKLEditor), ("ft_l", FTLEditor)):
        assert editor_class(name) is editor_type
    editor = editor_class("ft_l").from_config({"model": model, "alg": {"name": "ft_l", "ft_l": {"steps": 3}}})
    assert isinstance(editor.config, FTLConfig) and editor.config.steps == 3 and editor.config.model_name == "tiny-llama"
    alg = {"name": "ft_kl", "ft_kl": {"locality_prompts": LOCALITY_PROMPTS}, "locality_pool_size": 2}
    editor = editor_class("ft_kl").from_config({"model": model, "alg": alg, "experiment": {}})
    assert editor.config.locality_prompts == LOCALITY_PROMPTS


@pytest.mark.parametrize(
    ("bad_call", "error", "message"),
    [
        (lambda e: e.add_edits("What is the capital of France?"), TypeError, "list of"),
        (lambda e: e.add_edits([(PROMPT,)]), TypeError, "pair"),
        (lambda e: e.add_edit(PROMPT, "   "), ValueError, "target must not be empty"),
        (lambda e: e.add_edit(None, TARGET), TypeError, "prompt must be a string"),
        (lambda e: e.add_edit("x" * 5000, TARGET), ValueError, "limit"),
        (lambda e: e.query(""), ValueError, "must not be empty"),
        (lambda e: e.query_batch(PROMPT), TypeError, "prompts must be a list"),
        (lambda e: e.query_batch([PROMPT], max_new_tokens=0), ValueError, "max_new_tokens"),
        (lambda e: e.score([PROMPT], [TARGET, TARGET]), ValueError, "1 prompts but 2 targets"),
        (lambda e: e.score([PROMPT], TARGET), TypeError, "targets must be a list"),
        (lambda e: e.remove_edit("no-such-id"), KeyError, "no edit"),
    ],
)
def test_bad_input_is_refused_and_leaves_the_model_unchanged(bad_call, error, message):
    editor = FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST))
    before = weights(editor)
    with pytest.raises(error, match=message):
        bad_call(editor)
    assert editor.edit_ids() == []
    assert all(torch.equal(before[name], weight) for name, weight in weights(editor).items())


@pytest.mark.parametrize(
    ("make_config", "message"),
    [
        (lambda: FTConfig(steps=0), "steps must be an int >= 1"),
        (lambda: FTConfig(steps=2.5), "steps must be an int >= 1"),
        (lambda: FTConfig(lr=-1e-3), "lr must be a finite number > 0"),
        (lambda: FTConfig(lr=float("nan")), "lr must be a finite number > 0"),
        (lambda: FTConfig(optimizer="rmsprop"), "optimizer must be one of"),
        (lambda: FTConfig(parameter_pattern="(unclosed"), "not a valid regex"),
        (lambda: FTConfig(layers=[]), "non-empty list"),
        (lambda: FTConfig(layers="all"), "non-empty list"),
        (lambda: FTConfig(layers=[1.5]), "must hold ints"),
        (lambda: FTConfig(kl_weight=-1), "kl_weight must be a finite number >= 0"),
        (lambda: FTConfig(norm_constraint=0), "norm_constraint must be a finite number > 0"),
        (lambda: FTConfig(locality_prompts="one prompt"), "list of strings"),
        (lambda: FTConfig(locality_prompts=[""]), r"locality_prompts\[0\] must not be empty"),
        (lambda: FTConfig(prompt_format="markdown"), "prompt_format"),
        (lambda: FTConfig(max_new_tokens=0), "max_new_tokens"),
        (lambda: FTKLConfig(kl_weight=0), "it is plain FT"),
        (lambda: FTLConfig(norm_constraint=None), "FT-L is plain FT"),
    ],
)
def test_bad_configs_are_refused(make_config, message):
    with pytest.raises(ValueError, match=message):
        make_config()


def test_bad_editor_setups_are_refused():
    with pytest.raises(ValueError, match="out of range: model.layers has 3 layers"):
        FTEditor.from_pretrained("tiny-llama", FTConfig(layers=[3]))
    with pytest.raises(ValueError, match="no parameter matches .* parameter names look like: model.embed_tokens.weight"):
        FTEditor.from_pretrained("tiny-llama", FTConfig(parameter_pattern=r"no_such_module\.weight"))
    with pytest.raises(ValueError, match="needs locality prompts"):
        FTKLEditor.from_pretrained("tiny-llama", FTKLConfig())
    with pytest.raises(TypeError, match="FTLEditor needs a FTLConfig, got FTConfig"):
        FTLEditor.from_pretrained("tiny-llama", FTConfig())


def test_a_diverging_run_raises_and_keeps_the_previous_weights(monkeypatch):
    editor = FTEditor.from_pretrained("tiny-llama", FTConfig(**FAST))
    editor.add_edit(OTHER_PROMPT, OTHER_TARGET)
    before = weights(editor)
    real_nll, calls = editor.language_model.nll, []

    def nll_diverging_at_the_third_step(batch, **options):
        calls.append(1)
        loss = real_nll(batch, **options)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(editor.language_model, "nll", nll_diverging_at_the_third_step)
    with pytest.raises(FloatingPointError, match="lower config.lr"):
        editor.add_edit(PROMPT, TARGET)
    assert len(editor.edit_ids()) == 1
    assert all(torch.equal(before[name], weight) for name, weight in weights(editor).items())
