"""ROME: the closed form maps k* to v*; the editor's surface (subjects, reset, remove, save/load, registry)."""

import pytest
import torch
from key_value_fixtures import cheap_settings, write_tiny_data

from mend.rome import ROMEConfig, ROMEEditor
from mend.rome.compute_rank_one_update import rank_one_update
from serac.core import nethook
from serac.core.architectures import mlp_output_name
from serac.core.registry import editor_class
from serac.core.saving import NotASavedEditorError

PROMPT, SUBJECT, TARGET = "The mother tongue of Danielle Darrieux is", "Danielle Darrieux", "English"
OTHER = ("The Eiffel Tower is located in", "London", "The Eiffel Tower")


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_CACHE", str(tmp_path / "cache"))
    return cheap_settings(write_tiny_data(tmp_path / "data"))


def _editor(tiny_lm, settings, name="tiny-llama") -> ROMEEditor:
    return ROMEEditor(tiny_lm(name), ROMEConfig(model_name=name, **{"layer": 1, **settings}))


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2", "tiny-t5"])
def test_the_rank_one_update_maps_the_key_to_the_value_in_the_module_layout(tiny_lm, name):
    model = tiny_lm(name).model
    module = nethook.get_module(model, mlp_output_name(model, 1))
    d_in, d_out = nethook.linear_dims(module)
    generator = torch.Generator().manual_seed(0)
    keys = torch.randn(4 * d_in, d_in, generator=generator)
    second_moment = keys.T @ keys / len(keys)
    key, value = torch.randn(d_in, generator=generator), torch.randn(d_out, generator=generator)
    with torch.no_grad():
        current = module(key.unsqueeze(0))[0]
        update = rank_one_update(key, value, current, second_moment)
        assert torch.linalg.matrix_rank(update) == 1
        module.weight += nethook.in_weight_layout(module, update)  # Conv1D: transposed
        assert torch.allclose(module(key.unsqueeze(0))[0], value, atol=1e-4)
        # keys C⁻¹-orthogonal to k* are left alone
        direction = torch.linalg.solve(second_moment, key)
        other = torch.randn(d_in, generator=generator)
        other -= (direction @ other) / (direction @ key) * key
        assert torch.allclose(update @ other, torch.zeros(d_out), atol=1e-4)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_an_edit_writes_one_rank_one_matrix_and_reset_is_bit_exact(tiny_lm, settings, name):
    editor = _editor(tiny_lm, settings, name)
    before = {k: v.clone() for k, v in editor.language_model.model.state_dict().items()}
    editor.add_edit(PROMPT, TARGET, SUBJECT)
    (delta,) = editor.weight_deltas().values()
    assert delta.abs().sum() > 0 and torch.linalg.matrix_rank(delta) == 1
    after = editor.language_model.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == [f"{next(iter(editor.modules))}.weight"]
    editor.reset()
    assert all(torch.equal(before[k], v) for k, v in editor.language_model.model.state_dict().items())
    assert editor.edit_ids() == []


def test_the_edit_makes_the_target_more_likely(tiny_lm, settings):
    # A random model's logits are nearly flat and its outputs tiny: the top layer, the subject last
    # (so the rewritten output reaches the prediction), no clamp, a small lr, the bare prompt only (a random
    # model's keys differ too much between contexts for the averaged key to stand for it).
    settings = {**settings, "layer": -1, "value_steps": 20, "clamp_factor": 1e4, "value_lr": 0.02, "num_prefixes": 0}
    editor = _editor(tiny_lm, settings)
    prompt = "The mother tongue of Danielle Darrieux"
    before = editor.score([prompt], [TARGET])[0].mean_logprob
    editor.add_edit(prompt, TARGET, SUBJECT)
    after = editor.score([prompt], [TARGET])[0].mean_logprob
    assert after > before + 0.05, (before, after)


def test_missing_or_absent_subjects_are_errors_naming_the_edit(tiny_lm, settings):
    editor = _editor(tiny_lm, settings)
    with pytest.raises(ValueError, match=r"edit 0 .*no subject"):
        editor.add_edit(PROMPT, TARGET)
    with pytest.raises(ValueError, match=r"edit 1 \('The Eiffel.*'Paris' does not occur"):
        editor.add_edits([(PROMPT, TARGET, SUBJECT), (OTHER[0], OTHER[1], "Paris")])
    assert editor.edit_ids() == [] and not any(d.any() for d in editor.weight_deltas().values())


def test_remove_edit_replays_the_others_and_save_load_round_trips(tiny_lm, settings, tmp_path):
    editor = _editor(tiny_lm, settings)
    first = editor.add_edit(PROMPT, TARGET, SUBJECT)
    editor.add_edit(*OTHER)
    both = editor.weight_deltas()
    editor.save(tmp_path / "saved")
    loaded = ROMEEditor.load(tmp_path / "saved")
    assert loaded.edit_ids() == editor.edit_ids()
    assert all(torch.equal(loaded.weight_deltas()[n], d) for n, d in both.items())
    assert all(torch.equal(a, b) for a, b in zip(loaded.language_model.model.parameters(), editor.language_model.model.parameters()))
    editor.remove_edit(first)
    only_other = _editor(tiny_lm, settings)
    only_other.add_edit(*OTHER)
    assert all(torch.equal(editor.weight_deltas()[n], d) for n, d in only_other.weight_deltas().items())
    with pytest.raises(KeyError):
        editor.remove_edit(first)
    with pytest.raises(NotASavedEditorError):
        ROMEEditor.load(tmp_path / "nothing")


def test_registered_and_configured_from_the_cli_config(settings):
    assert editor_class("rome") is ROMEEditor
    config = {"model": {"name": "tiny-gpt2"}, "alg": {"name": "rome", "rome": {"layer": -1, "num_prefixes": 2}}}
    editor = ROMEEditor.from_config(config)
    assert editor.config.model_name == "tiny-gpt2" and list(editor.modules) == ["transformer.h.2.mlp.c_proj"]
    with pytest.raises(ValueError, match="layer"):
        ROMEConfig(layer="7")
    with pytest.raises(IndexError, match="out of range"):
        ROMEEditor.from_pretrained("tiny-llama", ROMEConfig(layer=9))
