"""The subject's last token is found through character offsets, for every tokenizer; absent subjects raise."""

import pytest

from serac.core.models import load_language_model
from serac.core.subject_tokens import SubjectNotFoundError, last_subject_token


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2", "tiny-t5"])
def test_the_last_token_of_the_subject_is_found(tiny_lm, name):
    lm = tiny_lm(name)
    prompt, subject = "The mother tongue of Danielle Darrieux is", "Danielle Darrieux"
    position = last_subject_token(lm, prompt, subject)
    ids = lm.batch([prompt], ["French"])["input_ids"][0]
    upto = lm.tokenizer.decode(ids[: position + 1], skip_special_tokens=True)
    assert upto.rstrip().endswith("Darrieux")
    assert not lm.tokenizer.decode(ids[: position], skip_special_tokens=True).rstrip().endswith("Darrieux")


def test_the_chat_format_finds_the_subject_inside_the_template():
    lm = load_language_model("tiny-llama", "cpu", "chat")
    prompt = "Who wrote Hamlet?"
    position = last_subject_token(lm, prompt, "Hamlet")
    ids = lm.batch([prompt], ["Paris"])["input_ids"][0]
    assert lm.tokenizer.decode(ids[: position + 1]).endswith("Hamlet")


def test_an_absent_or_missing_subject_is_an_error(tiny_lm):
    lm = tiny_lm("tiny-llama")
    with pytest.raises(SubjectNotFoundError, match="does not occur"):
        last_subject_token(lm, "Who wrote Hamlet?", "Paris")
    with pytest.raises(SubjectNotFoundError, match="no subject"):
        last_subject_token(lm, "Who wrote Hamlet?", "")
