import pytest

from serac.core.records import EditRecord
from serac.serac.calibration import EMBEDDING_FLOOR_MARGIN, calibrate_threshold

HAMLET, MONA_LISA, FRANCE = "Who wrote Hamlet?", "Who painted the Mona Lisa?", "What is the capital of France?"


def test_a_locality_prompt_in_scope_of_another_stored_edit_is_not_counted_as_out_of_scope(editor):
    # Like dialogue records: the first edit's out-of-scope question is the second edit's own topic.
    records = [
        EditRecord(HAMLET, "Jane Austen", rephrases=(HAMLET,), locality_prompts=(MONA_LISA,)),
        EditRecord(MONA_LISA, "Picasso", rephrases=(MONA_LISA,), locality_prompts=(FRANCE,)),
    ]
    calibration = calibrate_threshold(editor, records)
    assert calibration.in_scope_recall == 1.0 and calibration.out_of_scope_rejection == 1.0
    assert editor.edit_ids() == []  # the memory is left empty


def test_the_embedding_floor_lies_under_every_rephrase_s_cosine_and_is_measured_with_the_floor_off(editor):
    records = [
        EditRecord(HAMLET, "Jane Austen", rephrases=("Hamlet was written by whom?",), locality_prompts=(FRANCE,)),
        EditRecord(MONA_LISA, "Picasso", rephrases=("Who is the painter of the Mona Lisa?",), locality_prompts=(FRANCE,)),
    ]
    editor.configure(embedding_floor=0.999)  # would reject both rephrases if calibration routed with it
    calibration = calibrate_threshold(editor, records)
    encode = editor.classifier.encode
    cosines = (encode([HAMLET, MONA_LISA]) * encode([records[0].rephrases[0], records[1].rephrases[0]])).sum(axis=1)
    assert calibration.embedding_floor == pytest.approx(cosines.min() - EMBEDDING_FLOOR_MARGIN, abs=1e-6)
    assert 0.0 <= calibration.out_of_scope_below_floor <= 1.0
    assert editor.config.embedding_floor == 0.999  # the editor's own floor is left as it was
