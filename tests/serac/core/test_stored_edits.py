"""Every editor lists the edits it holds (`stored_edits`, `stored_edit`), subjects included
where it keeps them; memory editors answer only the prompts their edits cover when asked to
(`answer_from_edits`), which is what a server in front of an upstream base model needs."""

import pytest

from mend.finetune import FTEditor
from mend.mend import MENDEditor
from mend.mend.config import MENDConfig
from serac import SERAC, CacheEditor
from serac.core.editor import StoredEdit
from tests.serac.serac.tiny_serac import sharpen_embedding_scorer, tiny_config

EDITS = [("Who wrote Hamlet?", "Ada Lovelace", "Hamlet"), ("Who painted the Mona Lisa?", "Grace Hopper", None)]


@pytest.fixture(params=["serac", "cache", "ft", "mend"])
def editor(request, tiny_lm):
    if request.param == "serac":
        built = SERAC.from_pretrained(tiny_config(), device="cpu")
        sharpen_embedding_scorer(built)
    elif request.param == "cache":
        built = CacheEditor.from_pretrained("tiny-llama", device="cpu")
    elif request.param == "ft":
        built = FTEditor.from_pretrained("tiny-llama")
    else:
        built = MENDEditor(tiny_lm("tiny-llama"), MENDConfig(model_name="tiny-llama", rank=8))
    yield built
    built.close()


def test_stored_edits_are_the_applied_edits_oldest_first(editor):
    ids = editor.add_edits(EDITS)
    keeps_subjects = editor.name != "mend"  # MEND never uses a subject, so it does not keep one
    expected = [StoredEdit(edit_id, prompt, target, subject if keeps_subjects else None) for edit_id, (prompt, target, subject) in zip(ids, EDITS)]
    assert editor.stored_edits() == expected
    assert editor.stored_edit(ids[1]) == expected[1]
    editor.remove_edit(ids[0])
    assert editor.stored_edits() == expected[1:]
    for unknown in (ids[0], "nonsense"):
        with pytest.raises(KeyError):
            editor.stored_edit(unknown)


@pytest.mark.parametrize("kind", ["serac", "cache"])
def test_answer_from_edits_leaves_uncovered_prompts_to_the_base_model(kind):
    editor = SERAC.from_pretrained(tiny_config(), device="cpu") if kind == "serac" else CacheEditor.from_pretrained("tiny-llama", device="cpu")
    if kind == "serac":
        sharpen_embedding_scorer(editor)
    try:
        (edit_id,) = editor.add_edits([("Who wrote Hamlet?", "Ada Lovelace")])
        prompts = ["Who wrote Hamlet?", "Where is the Eiffel Tower?"]
        covered, uncovered = editor.answer_from_edits(prompts, max_new_tokens=3)
        assert uncovered is None
        assert covered == editor.query_batch(prompts, max_new_tokens=3)[0] and covered.edit_id == edit_id
    finally:
        editor.close()
