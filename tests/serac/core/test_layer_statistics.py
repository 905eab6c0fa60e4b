"""C = E[k kᵀ] is computed once, cached, reused; a corrupt cache file is detected and recomputed."""

import logging

import pytest
import torch
from key_value_fixtures import write_tiny_data

from serac.core import layer_statistics
from serac.core.architectures import mlp_output_name
from serac.core.layer_statistics import TextSample, second_moments


@pytest.fixture
def setup(tmp_path, monkeypatch, tiny_lm):
    monkeypatch.setenv("SERAC_CACHE", str(tmp_path / "cache"))
    lm = tiny_lm("tiny-llama")
    names = [mlp_output_name(lm.model, 0), mlp_output_name(lm.model, 2)]
    return lm, names, TextSample(tokens=200, data_dir=str(write_tiny_data(tmp_path / "data")))


def _count_computations(monkeypatch) -> list:
    calls = []
    compute = layer_statistics._compute

    def counted(*args, **kwargs):
        calls.append(args[1])
        return compute(*args, **kwargs)

    monkeypatch.setattr(layer_statistics, "_compute", counted)
    return calls


def test_second_moment_is_the_mean_outer_product_of_the_keys_and_is_symmetric(setup):
    lm, names, sample = setup
    moments = second_moments(lm, names, sample, "tiny-llama")
    for name in names:
        moment = moments[name]
        assert moment.shape == (128, 128)
        assert torch.allclose(moment, moment.T)
        assert torch.linalg.eigvalsh(moment.double()).min() > -1e-6


def test_a_cache_miss_computes_a_hit_reuses_and_one_pass_serves_every_missing_layer(setup, monkeypatch):
    lm, names, sample = setup
    calls = _count_computations(monkeypatch)
    first = second_moments(lm, names, sample, "tiny-llama")
    assert calls == [names]  # both layers in one pass
    again = second_moments(lm, names, sample, "tiny-llama")
    assert len(calls) == 1
    assert all(torch.equal(first[n], again[n]) for n in names)
    second_moments(lm, names, TextSample(tokens=100, data_dir=sample.data_dir), "tiny-llama")
    assert len(calls) == 2  # another sample is another key


def test_a_corrupt_or_truncated_cache_file_is_logged_and_recomputed(setup, monkeypatch, tmp_path, caplog):
    lm, names, sample = setup
    first = second_moments(lm, names[:1], sample, "tiny-llama")[names[0]]
    (file,) = (tmp_path / "cache" / "layer_stats").rglob("*.safetensors")
    data = bytearray(file.read_bytes())
    data[-8:] = b"\x00\x00\x80\x7f" * 2  # change matrix bytes: the checksum no longer fits
    file.write_bytes(bytes(data))
    calls = _count_computations(monkeypatch)
    with caplog.at_level(logging.WARNING):
        recomputed = second_moments(lm, names[:1], sample, "tiny-llama")[names[0]]
    assert calls and "checksum" in caplog.text
    assert torch.equal(recomputed, first)
    file.write_bytes(file.read_bytes()[:100])  # half-written
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert torch.equal(second_moments(lm, names[:1], sample, "tiny-llama")[names[0]], first)
    assert len(calls) == 2 and "unusable" in caplog.text
    assert not list(file.parent.glob("*.tmp"))
