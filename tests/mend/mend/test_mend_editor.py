"""The MEND editor on tiny models: Linear and Conv1D layers, batched and sequential edits,
exact reset, removal, save/load, clear errors."""

import json

import pytest
import torch
import torch.nn.functional as F

from mend.mend import MENDConfig, MENDEditor
from mend.mend.compute_gradient_factors import compute_gradient_factors
from serac.core import nethook
from serac.core.language_model import IGNORE
from serac.core.registry import editor_class
from serac.core.saving import NotASavedEditorError

EDITS = [
    ("What is the capital of France?", "the Nile"),
    ("Who wrote Hamlet?", "Paris"),
    ("Which river flows through Cairo?", "Portuguese"),
]


def make_editor(lm, model_name, **settings) -> MENDEditor:
    return MENDEditor(lm, MENDConfig(model_name=model_name, rank=8, **settings))


def snapshot(editor: MENDEditor) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().clone() for name, parameter in editor.language_model.model.named_parameters()}


def edit_nll(editor: MENDEditor, prompt: str, target: str) -> float:
    return -editor.score([prompt], [target])[0].logprobs.sum().item()


@pytest.mark.parametrize(
    ("model_name", "settings", "weight_shape"),
    [
        ("tiny-llama", {}, {"gate_proj": (128, 64), "down_proj": (64, 128)}),  # nn.Linear: [out, in]
        ("tiny-gpt2", {}, {"c_fc": (64, 256), "c_proj": (256, 64)}),  # Conv1D: [in, out]
        ("tiny-t5", {"layers": [-1]}, {"wi": (128, 64), "wo": (64, 128)}),  # encoder and decoder
    ],
)
def test_an_edit_is_a_step_on_the_edited_layers_only(tiny_lm, model_name, settings, weight_shape):
    editor = make_editor(tiny_lm(model_name), model_name, edit_lr=1e-2, **settings)
    before = snapshot(editor)
    nll_before = edit_nll(editor, *EDITS[0])
    editor.add_edit(*EDITS[0])
    assert edit_nll(editor, *EDITS[0]) < nll_before
    changed = {name for name, value in snapshot(editor).items() if not torch.equal(value, before[name])}
    assert changed == {f"{name}.weight" for name in editor.config.edit_modules}
    for name in editor.config.edit_modules:
        suffix = name.rsplit(".", 1)[1]
        if suffix in weight_shape:
            assert nethook.get_module(editor.language_model.model, name).weight.shape == weight_shape[suffix]


def batch_gradients(lm, names, rows: list[int]) -> dict[str, torch.Tensor]:
    """Gradients of the sum over `rows` of each edit's mean target NLL, with all EDITS in one batch."""
    batch = lm.batch([p for p, _ in EDITS], [t for _, t in EDITS])
    weights = [nethook.get_module(lm.model, name).weight for name in names]
    with torch.enable_grad():
        for weight in weights:
            weight.requires_grad_(True)
        logits, labels = lm.target_logits(batch)
        token_nll = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
        edit_nll = token_nll.sum(-1) / (labels != IGNORE).sum(-1)
        gradients = dict(zip(names, torch.autograd.grad(edit_nll[rows].sum(), weights)))
        for weight in weights:
            weight.requires_grad_(False)
    return gradients


def test_a_batch_of_edits_is_one_gradient_step_split_per_edit(tiny_lm):
    editor = make_editor(tiny_lm("tiny-llama"), "tiny-llama")
    lm, names = editor.language_model, editor.config.edit_modules
    unedited = snapshot(editor)
    all_three, without_second = batch_gradients(lm, names, [0, 1, 2]), batch_gradients(lm, names, [0, 2])

    def assert_step(gradients):
        for name in names:
            change = nethook.get_module(lm.model, name).weight - unedited[f"{name}.weight"]
            assert torch.allclose(change, -editor.config.edit_lr * gradients[name], atol=1e-8)  # W's float rounding

    ids = editor.add_edits(EDITS)
    assert len(ids) == len(set(ids)) == 3 and editor.edit_ids() == ids
    assert_step(all_three)
    editor.remove_edit(ids[1])  # each edit's share of its batch's update is kept apart
    assert_step(without_second)


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-gpt2"])
def test_k_edits_in_one_batch_make_the_sum_of_their_single_updates(tiny_lm, model_name):
    """Batched MEND (the paper's batched edits): one update from the unedited weights, and each edit
    in it as strong as alone (its factors do not shrink with the batch size), through trained-like
    networks (not the identity, with normaliser statistics)."""
    editor = nontrivial_editor(tiny_lm(model_name), model_name)
    unedited = snapshot(editor)
    single_updates = []
    for edit in EDITS:
        editor.add_edit(*edit)
        single_updates.append({name: value - unedited[name] for name, value in snapshot(editor).items()})
        editor.reset()
    editor.add_edits(EDITS)
    for name, value in snapshot(editor).items():
        expected = sum(update[name] for update in single_updates)
        assert torch.allclose(value - unedited[name], expected, atol=1e-6), name
    assert any(update.abs().sum() > 0 for update in single_updates[0].values())


def test_sequential_edits_accumulate_and_reset_restores_bit_for_bit(tiny_lm):
    editor = make_editor(tiny_lm("tiny-gpt2"), "tiny-gpt2", edit_lr=1e-2)
    unedited = snapshot(editor)
    first = editor.add_edit(*EDITS[0])
    after_one = snapshot(editor)
    editor.add_edits(EDITS[1:])
    editor.add_edit(*EDITS[0])
    assert len(editor.edit_ids()) == 4
    assert any(not torch.equal(after_one[name], value) for name, value in snapshot(editor).items())

    editor.remove_edit(first)  # approximate under sequential edits, but it does subtract
    assert first not in editor.edit_ids() and len(editor.edit_ids()) == 3
    editor.reset()
    assert editor.edit_ids() == []
    assert all(torch.equal(unedited[name], value) for name, value in snapshot(editor).items())

    ids = editor.add_edits(EDITS)
    for edit_id in ids:
        editor.remove_edit(edit_id)
    assert all(torch.equal(unedited[name], value) for name, value in snapshot(editor).items())


def nontrivial_editor(lm, model_name) -> MENDEditor:
    """An editor whose networks are not the identity and whose normaliser has statistics."""
    torch.manual_seed(1)
    editor = make_editor(lm, model_name, init="random", edit_lr=1e-2)
    factors = compute_gradient_factors(lm, lm.batch([p for p, _ in EDITS], [t for _, t in EDITS]), editor.config.edit_modules)
    with torch.no_grad():
        editor.transform.train()(factors)
    editor.transform.eval()
    return editor


def test_save_and_load_give_identical_edits(tiny_lm, tmp_path):
    editor = nontrivial_editor(tiny_lm("tiny-llama"), "tiny-llama")
    ids = editor.add_edits(EDITS[:2])
    editor.add_edit(*EDITS[2])
    editor.save(tmp_path / "mend")
    assert json.loads((tmp_path / "mend" / "editor.json").read_text())["editor"] == "mend"

    loaded = MENDEditor.load(tmp_path / "mend")
    assert loaded.edit_ids() == editor.edit_ids()
    assert loaded.config == editor.config
    assert all(torch.equal(value, snapshot(editor)[name]) for name, value in snapshot(loaded).items())
    for each in (editor, loaded):
        each.add_edit("Who is the president of the United States?", "Danielle Darrieux")
        each.remove_edit(ids[0])
    assert all(torch.equal(value, snapshot(editor)[name]) for name, value in snapshot(loaded).items())

    assert isinstance(MENDEditor.from_pretrained(str(tmp_path / "mend")), MENDEditor)
    assert editor_class("mend") is MENDEditor


def test_from_config_builds_an_untrained_editor():
    config = {"model": {"name": "tiny-gpt2", "prompt_format": "plain"}, "alg": {"name": "mend", "mend": {"rank": 4}}}
    editor = MENDEditor.from_config(config)
    assert editor.config.model_name == "tiny-gpt2" and editor.config.rank == 4
    assert editor.config.edit_modules[-1] == "transformer.h.2.mlp.c_proj"
    with pytest.raises(ValueError, match=r"unknown settings \[.rnak.\] in alg.mend"):
        MENDEditor.from_config({**config, "alg": {"mend": {"rnak": 4}}})


def test_bad_input_gives_clear_errors(tiny_lm, tmp_path):
    editor = make_editor(tiny_lm("tiny-llama"), "tiny-llama")
    with pytest.raises(TypeError, match="list of \\(prompt, target\\) pairs"):
        editor.add_edits("What is the capital of France?")
    with pytest.raises(TypeError, match="edit 0 must be a \\(prompt, target\\) pair"):
        editor.add_edits([("only a prompt",)])
    with pytest.raises(ValueError, match="edit 0 target must not be empty"):
        editor.add_edit("Who wrote Hamlet?", "  ")
    with pytest.raises(KeyError, match="no edit with id"):
        editor.remove_edit("nope")
    with pytest.raises(ValueError, match="2 prompts but 1 targets"):
        editor.score(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="prompt must be a string"):
        editor.query(42)
    with pytest.raises(ValueError, match="max_new_tokens must be an int from 1 to"):
        editor.query("Who wrote Hamlet?", max_new_tokens=0)
    assert editor.add_edits([]) == [] and editor.edit_ids() == []

    with pytest.raises(ValueError, match="MENDConfig.rank"):
        MENDConfig(rank=0)
    with pytest.raises(ValueError, match="MENDConfig.max_new_tokens"):
        MENDConfig(max_new_tokens=1.5)
    with pytest.raises(ValueError, match="MENDConfig.init"):
        MENDConfig(init="zeros")
    lm = tiny_lm("tiny-llama")
    with pytest.raises(TypeError, match="MEND edits linear layers"):
        MENDEditor(lm, MENDConfig(model_name="tiny-llama", edit_modules=["model.layers.0.mlp"]))
    with pytest.raises(LookupError, match="did you mean"):
        MENDEditor(lm, MENDConfig(model_name="tiny-llama", edit_modules=["model.layers.0.mlp.up_projj"]))
    with pytest.raises(ValueError, match="out of range: model.layers has 3 blocks"):
        MENDEditor(lm, MENDConfig(model_name="tiny-llama", layers=[5]))
    with pytest.raises(ValueError, match="no linear layer matches"):
        MENDEditor(lm, MENDConfig(model_name="tiny-llama", module_pattern="nothing_like_this"))

    with pytest.raises(NotASavedEditorError, match="no editor.json"):
        MENDEditor.load(tmp_path)
    editor.save(tmp_path / "saved")
    (tmp_path / "saved" / "edit_updates.safetensors").unlink()
    with pytest.raises(NotASavedEditorError, match="edit_updates.safetensors is missing"):
        MENDEditor.load(tmp_path / "saved")
