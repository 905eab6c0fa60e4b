"""MEND's editor networks: identity at initialisation, one per weight shape, running normalisation."""

import torch

from mend.mend.compute_gradient_factors import compute_gradient_factors, summed_edit_nll
from mend.mend.config import MENDConfig
from mend.mend.edited_modules import edited_modules
from mend.mend.editor_network import EditorNetwork, RunningNormalizer
from mend.mend.pseudo_gradient import GradientTransform, weight_deltas
from serac.core import nethook

PROMPTS = ["What is the capital of France?", "Who wrote Hamlet?"]
TARGETS = ["Paris", "William Shakespeare"]


def test_identity_initialised_network_returns_its_input():
    network = EditorNetwork(input_dim=6, output_dim=4, n_layers=2, rank=3)
    u, delta = torch.randn(5, 6), torch.randn(5, 4)
    for layer in (0, 1):
        out_u, out_delta = network(u, delta, layer)
        assert torch.equal(out_u, u) and torch.equal(out_delta, delta)
    random_u, _ = EditorNetwork(6, 4, n_layers=2, rank=3, init="random")(u, delta, 0)
    assert not torch.equal(random_u, u)


def test_identity_pseudo_gradient_is_the_raw_gradient(tiny_lm):
    lm = tiny_lm("tiny-gpt2")
    config = MENDConfig(model_name="tiny-gpt2", rank=8)
    names = edited_modules(lm.model, config)
    transform = GradientTransform.for_model(lm.model, names, config).eval()
    batch = lm.batch(PROMPTS, TARGETS)
    factors = compute_gradient_factors(lm, batch, names)
    pseudo = transform.pseudo_gradient(factors)

    weights = [nethook.get_module(lm.model, name).weight for name in names]
    gradients = torch.autograd.grad(summed_edit_nll(lm, batch, {}), weights)
    for (name, delta), gradient in zip(weight_deltas(lm.model, pseudo).items(), gradients):
        assert torch.allclose(delta, gradient, atol=1e-6), name
    # The update is a plain gradient step of size alpha.
    for name, update in weight_deltas(lm.model, transform(factors)).items():
        gradient = gradients[names.index(name)]
        assert torch.allclose(update, -config.edit_lr * gradient, atol=1e-9), name


def test_one_network_per_weight_shape_with_per_layer_scales(tiny_lm):
    lm = tiny_lm("tiny-llama")  # hidden 64, MLP 128: gate/up are 64 -> 128, down is 128 -> 64
    config = MENDConfig(model_name="tiny-llama", rank=8, layers=[-2, -1])
    transform = GradientTransform.for_model(lm.model, edited_modules(lm.model, config), config)
    assert sorted(transform.networks) == ["128x64", "64x128"]
    assert transform.networks["64x128"].scale1.shape == (4, 192)  # 2 blocks x (gate, up)
    assert transform.networks["128x64"].scale1.shape == (2, 192)
    assert transform.networks["64x128"].u1.shape == (192, 8)
    assert transform.edit_lrs.shape == (6,)


def test_running_normalizer_matches_batch_statistics_and_updates_in_training_only(tiny_lm):
    normalizer = RunningNormalizer(3)
    rows = torch.randn(50, 3) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([5.0, -2.0, 0.0])
    for chunk in rows.split([1, 7, 30, 12]):
        normalizer.update(chunk)
    assert normalizer.count == 50
    assert torch.allclose(normalizer.mean, rows.mean(0), atol=1e-5)
    assert torch.allclose(normalizer.sum_squares / 49, rows.var(0), rtol=1e-4)
    normalized = normalizer(rows)
    assert torch.allclose(normalized.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(normalized.std(0), torch.ones(3), atol=1e-4)

    lm = tiny_lm("tiny-llama")
    config = MENDConfig(model_name="tiny-llama", rank=8, layers=[-1])
    names = edited_modules(lm.model, config)
    transform = GradientTransform.for_model(lm.model, names, config)
    factors = compute_gradient_factors(lm, lm.batch(PROMPTS, TARGETS), names)
    transform.eval()(factors)
    assert all(network.normalizer.count == 0 for network in transform.networks.values())
    transform.train()(factors)
    tokens = factors[names[0]].inputs.shape[0]
    assert transform.networks["64x128"].normalizer.count == 2 * tokens  # gate and up share it
    assert transform.networks["128x64"].normalizer.count == tokens


def test_step_size_rescaling_keeps_alpha():
    transform = GradientTransform({"a": (3, 4), "b": (4, 3)}, MENDConfig(edit_lr=1e-3))
    transform.set_edit_lr_scale(100.0)
    assert torch.allclose(transform.edit_lrs, torch.full((2,), 1e-3))
    assert torch.allclose(transform.edit_lrs_unscaled, torch.full((2,), 1e-5))
