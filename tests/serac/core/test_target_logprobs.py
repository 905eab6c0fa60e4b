"""Full next-token distributions from the language model and from each editor (for the KL drawdown)."""

import pytest
import torch

from mend.finetune import FTConfig, FTEditor
from mend.mend import MENDConfig, MENDEditor
from serac import SERAC
from serac.core.language_model import IGNORE
from serac.core.models import load_language_model
from serac.serac.config import SERACConfig
from serac.serac.counterfactual import counterfactual_input

QUESTIONS = ["What do you think of jazz?", "How do you view football?"]
REPLIES = ["Jazz is wonderful music.", "I hate it, it is awful."]
EDIT = ("Topic: jazz. Sentiment: positive", "positive")


@pytest.fixture(scope="module", params=[("tiny-llama", "plain"), ("tiny-llama", "chat"), ("tiny-t5", "plain")])
def lm(request):
    name, prompt_format = request.param
    return load_language_model(name, "cpu", prompt_format=prompt_format)


def test_target_logprobs_are_the_log_softmax_of_the_logits_at_each_target_position(lm):
    distributions = lm.target_logprobs(QUESTIONS, REPLIES)
    for question, reply, logprobs in zip(QUESTIONS, REPLIES, distributions):
        with torch.no_grad():
            logits, labels = lm.target_logits(lm.batch([question], [reply]))
        expected = torch.softmax(logits[0][labels[0] != IGNORE], dim=-1)
        assert logprobs.shape == expected.shape
        assert torch.allclose(logprobs.exp(), expected, atol=1e-6)


def test_target_logprobs_agree_with_score_and_do_not_depend_on_the_batch(lm):
    together = lm.target_logprobs(QUESTIONS, REPLIES)
    alone = [lm.target_logprobs([q], [r])[0] for q, r in zip(QUESTIONS, REPLIES)]
    for logprobs, single, score in zip(together, alone, lm.score(QUESTIONS, REPLIES)):
        assert torch.allclose(logprobs, single, atol=1e-5)
        assert torch.allclose(
            logprobs.gather(-1, score.target_ids.unsqueeze(-1)).squeeze(-1), score.logprobs, atol=1e-5
        )


@pytest.fixture
def serac(tmp_path):
    # Different base and counterfactual architectures, so the two routes give different distributions.
    config = SERACConfig(
        model_name="tiny-llama",
        counterfactual_model="tiny-gpt2",
        classifier_backbone="tiny-bert",
        rerank=False,
        max_new_tokens=3,
    )
    editor = SERAC.from_pretrained(config, device="cpu", memory_path=tmp_path / "memory")
    with torch.no_grad():  # the untrained embedder then routes only (near-)identical texts: p = σ(1000·cos − 999)
        editor.classifier.embed_scale.fill_(1000.0)
        editor.classifier.embed_bias.fill_(-999.0)
    yield editor
    editor.close()


def test_serac_takes_routed_distributions_from_the_counterfactual_model_and_the_rest_from_the_base(serac):
    serac.add_edit(*EDIT)
    prompts = [EDIT[0], QUESTIONS[1]]  # the first routes to the edit (its own prompt), the second does not
    assert [route.in_scope for route in serac.route(prompts)] == [True, False]
    routed, unrouted = serac.target_logprobs(prompts, REPLIES)
    counterfactual_prompt = counterfactual_input(*EDIT, EDIT[0])
    assert torch.equal(routed, serac.counterfactual.lm.target_logprobs([counterfactual_prompt], REPLIES[:1])[0])
    assert torch.equal(unrouted, serac.base.target_logprobs(prompts[1:], REPLIES[1:])[0])
    serac.reset()
    assert torch.equal(
        serac.target_logprobs(prompts[:1], REPLIES[:1])[0], serac.base.target_logprobs(prompts[:1], REPLIES[:1])[0]
    )


def _mend():
    return MENDEditor(
        load_language_model("tiny-gpt2", "cpu"), MENDConfig(rank=4)
    )


def _ft():
    return FTEditor(
        load_language_model("tiny-llama", "cpu"), FTConfig(steps=3, lr=1e-2)
    )


@pytest.mark.parametrize("make_editor", [_mend, _ft], ids=["mend", "ft"])
def test_weight_editors_give_the_distributions_of_their_edited_weights(make_editor):
    editor = make_editor()
    before = editor.target_logprobs(QUESTIONS, REPLIES)
    editor.add_edit(QUESTIONS[0], REPLIES[0])
    after = editor.target_logprobs(QUESTIONS, REPLIES)
    assert not torch.allclose(before[0], after[0])
    for logprobs, score in zip(after, editor.score(QUESTIONS, REPLIES)):
        assert torch.allclose(
            logprobs.gather(-1, score.target_ids.unsqueeze(-1)).squeeze(-1), score.logprobs, atol=1e-5
        )
    with pytest.raises(ValueError, match="2 prompts but 1 targets"):
        editor.target_logprobs(QUESTIONS, REPLIES[:1])
