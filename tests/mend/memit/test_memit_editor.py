"""MEMIT: one edit on one layer is ROME's solve; batches spread over the layers; reset, save/load, registry."""

import pytest
import torch
from key_value_fixtures import FACTS, cheap_settings, write_tiny_data
from safetensors.torch import load_file, save_file

from mend.memit import MEMITConfig, MEMITEditor
from mend.memit.compute_multi_layer_update import layer_residuals, multi_layer_update
from mend.rome.compute_rank_one_update import rank_one_update
from serac.core.registry import editor_class


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SERAC_CACHE", str(tmp_path / "cache"))
    return cheap_settings(write_tiny_data(tmp_path / "data"))


def _problem(d_in=12, d_out=8, edits=1, seed=0):
    generator = torch.Generator().manual_seed(seed)
    samples = torch.randn(10 * d_in, d_in, generator=generator)
    second_moment = (samples.T @ samples / len(samples)).double()
    weight = torch.randn(d_out, d_in, generator=generator).double()
    keys = torch.randn(edits, d_in, generator=generator).double()
    values = torch.randn(edits, d_out, generator=generator).double()
    return second_moment, weight, keys, values


def test_one_edit_on_one_layer_is_romes_update_scaled_by_the_sherman_morrison_factor():
    second_moment, weight, keys, values = _problem()
    key, value = keys[0], values[0]
    rome = rank_one_update(key, value, weight @ key, second_moment)
    residual = layer_residuals(values, (weight @ key).unsqueeze(0), layers_left=1)
    for weight_of_c in (1.0, 1.5e4):
        memit = multi_layer_update(keys, residual, second_moment, weight_of_c)
        quadratic = key @ torch.linalg.solve(second_moment, key)  # kᵀC⁻¹k
        assert torch.allclose(memit, rome * quadratic / (weight_of_c + quadratic), rtol=1e-8, atol=1e-10)
    # λ → 0: MEMIT's solve is ROME's
    assert torch.allclose(multi_layer_update(keys, residual, second_moment, 1e-6), rome, rtol=1e-4, atol=1e-6)


def test_a_batch_update_is_the_least_squares_solution():
    second_moment, weight, keys, values = _problem(edits=5)
    residuals = values - keys @ weight.T
    weight_of_c = 2.0
    update = multi_layer_update(keys, residuals, second_moment, weight_of_c)
    # stationarity of ‖(W+Δ)K − V‖² + λ tr(Δ C Δᵀ): Δ(λC + KKᵀ) = R Kᵀ
    assert torch.allclose(update @ (weight_of_c * second_moment + keys.T @ keys), residuals.T @ keys, atol=1e-8)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_a_batch_edits_every_layer_of_the_range_and_reset_is_bit_exact(tiny_lm, settings, name):
    editor = MEMITEditor(tiny_lm(name), MEMITConfig(model_name=name, layers=[0, 1], **settings))
    before = {k: v.clone() for k, v in editor.language_model.model.state_dict().items()}
    ids = editor.add_edits([(prompt, new, subject) for prompt, subject, _, new in FACTS])
    assert len(set(ids)) == len(FACTS) and editor.edit_ids() == ids
    assert all(delta.any() for delta in editor.weight_deltas().values()) and len(editor.modules) == 2
    editor.reset()
    assert all(torch.equal(before[k], v) for k, v in editor.language_model.model.state_dict().items())


def test_save_load_round_trip_remove_and_subject_errors(tiny_lm, settings, tmp_path):
    editor = MEMITEditor(tiny_lm("tiny-llama"), MEMITConfig(model_name="tiny-llama", layers=[1, 0], **settings))
    assert list(editor.modules) == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    first = editor.add_edits([(p, new, s) for p, s, _, new in FACTS[:2]])
    editor.add_edit(FACTS[2][0], FACTS[2][3], FACTS[2][1])
    editor.save(tmp_path / "saved")
    loaded = MEMITEditor.load(tmp_path / "saved")
    assert loaded.edit_ids() == editor.edit_ids()
    assert all(torch.equal(loaded.weight_deltas()[n], d) for n, d in editor.weight_deltas().items())
    editor.remove_edit(first[0])
    assert len(editor.edit_ids()) == 2
    with pytest.raises(ValueError, match=r"edit 0 .*does not occur"):
        editor.add_edit("Who wrote Hamlet?", "Paris", "Cairo")


def test_registered_and_the_layer_range_is_validated():
    assert editor_class("memit") is MEMITEditor
    with pytest.raises(ValueError, match="distinct"):
        MEMITConfig(layers=[3, 3])
    with pytest.raises(ValueError, match="mom2_weight"):
        MEMITConfig(mom2_weight=0)


def test_a_batch_that_stopped_reuses_the_values_it_had_found_and_ends_as_an_uninterrupted_batch(tiny_lm, settings, tmp_path, monkeypatch):
    import mend.memit.editor as memit_editor

    requests = [(prompt, new, subject) for prompt, subject, _, new in FACTS]
    uninterrupted = MEMITEditor(tiny_lm("tiny-llama"), MEMITConfig(model_name="tiny-llama", layers=[0, 1], **settings))
    uninterrupted.add_edits(requests)

    optimise, calls = memit_editor.optimise_value, []

    def counted(*args, **kwargs):
        calls.append(args[3])  # the target
        if crash_after is not None and len(calls) > crash_after:
            raise RuntimeError("simulated crash")
        return optimise(*args, **kwargs)

    monkeypatch.setattr(memit_editor, "optimise_value", counted)
    cached = MEMITConfig(model_name="tiny-llama", layers=[0, 1], value_cache=str(tmp_path / "values"), **settings)
    crash_after = 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        MEMITEditor(tiny_lm("tiny-llama"), cached).add_edits(requests)
    assert len(list((tmp_path / "values").glob("*.safetensors"))) == 2

    calls.clear()
    crash_after = None
    resumed = MEMITEditor(tiny_lm("tiny-llama"), cached)
    resumed.add_edits(requests)
    assert len(calls) == len(FACTS) - 2  # the two values found before the crash were read back
    assert all(torch.equal(resumed.weight_deltas()[n], d) for n, d in uninterrupted.weight_deltas().items())

    # A damaged file is optimised again; other settings never reuse a stored value.
    next(iter((tmp_path / "values").glob("*.safetensors"))).write_bytes(b"not a tensor file")
    calls.clear()
    MEMITEditor(tiny_lm("tiny-llama"), cached).add_edits(requests)
    assert len(calls) == 1
    calls.clear()
    other = MEMITConfig(model_name="tiny-llama", layers=[0, 1], value_cache=str(tmp_path / "values"), **settings | {"value_lr": 0.25})
    MEMITEditor(tiny_lm("tiny-llama"), other).add_edits(requests)
    assert len(calls) == len(FACTS)


def test_each_cached_value_keeps_its_optimisation_time_for_a_batch_timed_across_runs(tiny_lm, settings, tmp_path):
    requests = [(prompt, new, subject) for prompt, subject, _, new in FACTS]
    cached = MEMITConfig(model_name="tiny-llama", layers=[0, 1], value_cache=str(tmp_path / "values"), **settings)
    first = MEMITEditor(tiny_lm("tiny-llama"), cached)
    first.add_edits(requests)
    assert first.reused_value_costs == []  # every z optimised in this run
    resumed = MEMITEditor(tiny_lm("tiny-llama"), cached)
    resumed.add_edits(requests)
    costs = resumed.reused_value_costs
    assert len(costs) == len(FACTS) and all(cost.seconds > 0 and cost.cpu_seconds > 0 for cost in costs)

    # A value stored before times were kept is still reused, its time unknown.
    path = next(iter((tmp_path / "values").glob("*.safetensors")))
    save_file(load_file(path), path)
    again = MEMITEditor(tiny_lm("tiny-llama"), cached)
    again.add_edits(requests)
    assert sum(cost.seconds is None for cost in again.reused_value_costs) == 1
    assert sum(cost.cpu_seconds is None for cost in again.reused_value_costs) == 1
