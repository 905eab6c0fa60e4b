from serac.core.records import EditRecord
from serac.serac.calibration import calibrate_threshold

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
