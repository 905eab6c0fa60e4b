"""ROME on the real SmolLM2-135M: one CounterFact edit makes the new object beat the true one (slow)."""

import pytest

from mend.rome import ROMEConfig, ROMEEditor
from serac.core.data import load_records


@pytest.mark.slow
def test_one_counterfact_edit_wins_on_its_prompt_and_paraphrase():
    (record,) = load_records("counterfact", "val", limit=1)
    editor = ROMEEditor.from_pretrained("smollm2-135m", ROMEConfig(num_prefixes=4, value_steps=15))
    editor.add_edit(record.prompt, record.target, record.subject)
    for prompt in (record.prompt, record.rephrases[0]):
        new, true = editor.score([prompt, prompt], [record.target, record.original_answer])
        assert new.mean_logprob > true.mean_logprob
    editor.reset()
    new, true = editor.score([record.prompt] * 2, [record.target, record.original_answer])
    assert new.mean_logprob < true.mean_logprob
