import json

import pytest
import torch
from tiny_serac import tiny_config

from index import EditNotFoundError, EncoderMismatchError
from serac import SERAC
from serac.core.saving import NotASavedEditorError

QUESTION = "Who wrote Hamlet?"
UNRELATED = "What is the capital of France?"


def test_an_edit_routes_its_own_prompt_and_nothing_unrelated(editor):
    edit_id = editor.add_edit(QUESTION, "Jane Austen")
    assert editor.edit_ids() == [edit_id]
    routed, unrelated = editor.query_batch([QUESTION, UNRELATED])
    assert routed.routed and routed.edit_id == edit_id and routed.scope_score > 0.5
    assert not unrelated.routed and unrelated.edit_id is None


def test_an_edit_always_covers_its_own_prompt(editor):
    edit_id = editor.add_edit(QUESTION, "Jane Austen")
    editor.configure(threshold=1.0)  # the classifier finds nothing in scope
    routed, unrelated = editor.query_batch([QUESTION, UNRELATED])
    assert routed.routed and routed.edit_id == edit_id
    assert not unrelated.routed


def test_a_newer_edit_of_the_same_prompt_wins(editor):
    editor.add_edit(QUESTION, "Jane Austen")
    newer = editor.add_edit(QUESTION, "Mary Shelley")
    assert editor.query(QUESTION).edit_id == newer


def test_with_subject_scope_an_edit_covers_only_queries_that_name_its_subject(editor):
    riga = editor.add_edit("Riga is a twin city of", "Athens", subject="Riga")
    editor.configure(threshold=0.0)  # the classifier finds every query in scope, as it can a neighbour
    neighbour, paraphrase = "Santiago is a twin city of", "The twin city of RIGA is"
    assert all(result.routed for result in editor.query_batch([neighbour, paraphrase]))
    editor.configure(subject_scope=True)
    routed_neighbour, routed_paraphrase = editor.query_batch([neighbour, paraphrase])
    assert not routed_neighbour.routed
    assert routed_paraphrase.routed and routed_paraphrase.edit_id == riga  # the subject's name, in any case
    hamlet = editor.add_edit("Who wrote Hamlet?", "Jane Austen")  # no subject: routed by the classifier alone
    assert editor.query("Who wrote Macbeth?").edit_id == hamlet


def test_with_subject_scope_a_newer_edit_of_another_subject_is_no_edit_of_the_same_fact(editor):
    older = editor.add_edit("Riga Port is a twin city of", "Athens", subject="Riga")
    newer = editor.add_edit("Riga Port, twin city of", "Oslo", subject="Riga Port")
    editor.configure(threshold=0.0, conflict_margin=1e9)  # each edit in scope of the other's prompt
    assert editor.query("Riga Port is a twin city of").edit_id == newer  # newest wins: taken as one fact
    editor.configure(subject_scope=True)
    assert editor.query("Riga Port is a twin city of").edit_id == older  # two subjects: two facts


def test_a_newer_edit_of_the_same_fact_supersedes_an_older_one_for_every_phrasing(editor):
    editor.add_edit(QUESTION, "Jane Austen")
    editor.configure(threshold=0.0, conflict_margin=1e9)  # both edits are in scope of both prompts
    newer = editor.add_edit("Who wrote Hamlet ?", "Mary Shelley")
    assert editor.query(QUESTION).edit_id == newer
    assert editor.query("Who wrote Hamlet ?").edit_id == newer


def test_a_newer_edit_out_of_the_conflict_margin_does_not_supersede(editor):
    own = editor.add_edit(QUESTION, "Jane Austen")
    editor.configure(threshold=0.0, conflict_margin=0.0)
    editor.add_edit("Who wrote Hamlet ?", "Mary Shelley")
    assert editor.query(QUESTION).edit_id == own


def scripted_cross_encoder(editor, monkeypatch, logits: dict[tuple[str, str], float], similarities: dict | None = None):
    """The cross-encoder replaced by a table of (edit prompt, query) -> in-scope logit (default: -5),
    and the candidates' embedding similarities by another (default: 0.5 for every pair, so the
    logits alone rank the candidates)."""

    def cross_logits(edit_texts, queries):
        return torch.tensor([logits.get(pair, -5.0) for pair in zip(edit_texts, queries)])

    search = editor.router._search

    def scripted_search(queries, vectors, k):
        candidates, _ = search(queries, vectors, k)
        candidates = [
            [(edit, (similarities or {}).get((edit.prompt, query), 0.5)) for edit, _ in pairs] for query, pairs in zip(queries, candidates)
        ]
        return candidates, editor.router._logits(queries, candidates)

    editor.configure(rerank=True, threshold=0.5, conflict_margin=2.0)
    monkeypatch.setattr(editor.classifier, "cross_logits", cross_logits)
    monkeypatch.setattr(editor.router, "_search", scripted_search)


def test_among_edits_the_cross_encoder_cannot_rank_apart_the_nearer_by_embedding_answers(editor, monkeypatch):
    """Seen among 10^5 CounterFact edits: the cross-encoder scores a paraphrase's own edit and a
    same-subject edit of another relation both near its maximum, in either order; the embedding
    similarity still puts the own edit first (paraphrase success 0.855 -> 0.900 at seed 1,
    benchmarks/scale/README.md)."""
    own_prompt, look_alike_prompt = "The expertise of Carl Linnaeus is", "Carl Linnaeus, of"
    paraphrase = "Carl Linnaeus is known for"
    own = editor.add_edit(own_prompt, "history")
    look_alike = editor.add_edit(look_alike_prompt, "Fortune")
    logits = {(own_prompt, paraphrase): 6.8, (look_alike_prompt, paraphrase): 7.6}
    similarities = {(own_prompt, paraphrase): 0.91, (look_alike_prompt, paraphrase): 0.88}
    scripted_cross_encoder(editor, monkeypatch, logits, similarities)
    assert editor.query(paraphrase).edit_id == own
    # Beyond the margin the cross-encoder's ranking stands, however near the other edit's embedding.
    scripted_cross_encoder(editor, monkeypatch, {**logits, (own_prompt, paraphrase): 5.0}, similarities)
    assert editor.query(paraphrase).edit_id == look_alike
    # A nearer edit out of scope never answers.
    scripted_cross_encoder(editor, monkeypatch, {(own_prompt, paraphrase): -0.5, (look_alike_prompt, paraphrase): 1.0}, similarities)
    assert editor.query(paraphrase).edit_id == look_alike


def test_a_newer_look_alike_edit_of_another_fact_does_not_answer_for_an_older_one(editor, monkeypatch):
    hamlet, macbeth = "Who wrote Hamlet?", "Who wrote Macbeth?"
    paraphrase = "Hamlet was written by whom?"
    own = editor.add_edit(hamlet, "Jane Austen")
    look_alike = editor.add_edit(macbeth, "Mary Shelley")
    # The paraphrase looks like both edits (both in scope, within the margin), but the two edits'
    # prompts are not in each other's scope: they are edits of different facts.
    scripted_cross_encoder(editor, monkeypatch, {(hamlet, paraphrase): 5.0, (macbeth, paraphrase): 4.5, (macbeth, macbeth): 9.0})
    assert editor.query(paraphrase).edit_id == own
    assert editor.query(macbeth).edit_id == look_alike

    # A newer edit of the same fact (the two prompts in each other's scope) does supersede it.
    reworded = "Who is the author of Hamlet?"
    newer = editor.add_edit(reworded, "Ada Lovelace")
    scripted_cross_encoder(
        editor, monkeypatch,
        {(hamlet, paraphrase): 5.0, (macbeth, paraphrase): 4.5, (reworded, paraphrase): 4.0, (reworded, hamlet): 3.0,
         (hamlet, reworded): 3.0},
    )
    assert editor.query(paraphrase).edit_id == newer


def test_a_newer_edit_whose_prompt_covers_the_older_one_but_not_the_other_way_does_not_supersede(editor, monkeypatch):
    """Seen at 10^4 CounterFact edits: "Jacob Katz expired at" (newer) found "Arthur Griffith
    expired at" in its scope, p = 0.998, and answered the older edit's own prompt; the other way
    round the classifier said 0.000."""
    older, newer = "Arthur Griffith expired at", "Jacob Katz expired at"
    own = editor.add_edit(older, "Philadelphia")
    editor.add_edit(newer, "Paris")
    scripted_cross_encoder(editor, monkeypatch, {(older, older): 9.0, (newer, older): 8.0, (newer, newer): 9.0})
    assert editor.query(older).edit_id == own


def test_the_same_fact_check_of_a_batch_is_one_classifier_call(editor, monkeypatch):
    hamlet, macbeth = "Who wrote Hamlet?", "Who wrote Macbeth?"
    hamlet_again, macbeth_again = "Who is the author of Hamlet?", "Who is the author of Macbeth?"
    asks = ["Hamlet was written by whom?", "Macbeth was written by whom?"]
    editor.add_edit(hamlet, "Jane Austen"), editor.add_edit(macbeth, "Mary Shelley")
    new_hamlet, new_macbeth = editor.add_edit(hamlet_again, "Ada Lovelace"), editor.add_edit(macbeth_again, "Emily Bronte")
    scripted_cross_encoder(editor, monkeypatch, {
        (hamlet, asks[0]): 5.0, (hamlet_again, asks[0]): 4.0, (hamlet_again, hamlet): 3.0, (hamlet, hamlet_again): 3.0,
        (macbeth, asks[1]): 5.0, (macbeth_again, asks[1]): 4.0, (macbeth_again, macbeth): 3.0, (macbeth, macbeth_again): 3.0,
    })
    scripted = editor.classifier.cross_logits
    calls = []

    def counted(edit_texts, queries):
        calls.append(list(zip(edit_texts, queries)))
        return scripted(edit_texts, queries)

    monkeypatch.setattr(editor.classifier, "cross_logits", counted)
    assert [route.edit_id for route in editor.query_batch(asks)] == [new_hamlet, new_macbeth]
    same_fact_calls = [pairs for pairs in calls if (hamlet_again, hamlet) in pairs or (macbeth_again, macbeth) in pairs]
    assert len(same_fact_calls) == 1
    assert {(hamlet_again, hamlet), (macbeth_again, macbeth), (hamlet, hamlet_again), (macbeth, macbeth_again)} <= set(same_fact_calls[0])


def test_closest_conflicts_let_an_edit_of_exactly_the_query_beat_a_newer_paraphrase_edit(editor):
    own = editor.add_edit(QUESTION, "Jane Austen")
    editor.configure(threshold=0.0, conflicts="closest")  # both edits are in scope of both prompts
    paraphrase = editor.add_edit("Who wrote Hamlet ?", "Mary Shelley")
    assert editor.query(QUESTION).edit_id == own
    assert editor.query("Who wrote Hamlet ?").edit_id == paraphrase


def test_routed_prompts_are_answered_by_the_counterfactual_model_and_the_rest_by_the_base(editor):
    editor.add_edit(QUESTION, "Jane Austen")
    scores = editor.score([QUESTION, UNRELATED], ["Jane Austen", "Paris"])
    from_counterfactual = editor.counterfactual.score([(QUESTION, "Jane Austen")], [QUESTION], ["Jane Austen"])[0]
    from_base = editor.base.score([UNRELATED], ["Paris"])[0]
    assert torch.allclose(scores[0].logprobs, from_counterfactual.logprobs)
    assert torch.allclose(scores[1].logprobs, from_base.logprobs)


def test_remove_and_reset_take_edits_out_of_scope(editor):
    first, second = editor.add_edits([(QUESTION, "Jane Austen"), (UNRELATED, "Lyon")])
    editor.remove_edit(first)
    assert editor.edit_ids() == [second]
    assert not editor.query(QUESTION).routed and editor.query(UNRELATED).routed
    with pytest.raises(EditNotFoundError):
        editor.remove_edit(first)
    editor.reset()
    assert editor.edit_ids() == [] and not editor.query(UNRELATED).routed


def test_saved_editor_reloads_with_its_memory_and_gives_identical_answers(editor, tmp_path):
    editor.add_edits([(QUESTION, "Jane Austen"), (UNRELATED, "Lyon")])
    prompts = [QUESTION, UNRELATED, "Who painted the Mona Lisa?"]
    before = editor.query_batch(prompts)
    scores_before = editor.score(prompts, ["Jane Austen", "Lyon", "Leonardo"])
    editor.save(tmp_path / "saved")
    reloaded = SERAC.load(tmp_path / "saved", device="cpu")
    try:
        assert reloaded.edit_ids() == editor.edit_ids()
        assert reloaded.query_batch(prompts) == before
        for a, b in zip(reloaded.score(prompts, ["Jane Austen", "Lyon", "Leonardo"]), scores_before):
            assert torch.equal(a.logprobs, b.logprobs)
        # edits added after loading are stored in the loaded folder
        new_id = reloaded.add_edit("Who discovered penicillin?", "Marie Curie")
    finally:
        reloaded.close()
    again = SERAC.load(tmp_path / "saved", device="cpu")
    assert new_id in again.edit_ids()
    again.close()


def test_edit_ids_are_strings_and_bad_ids_are_key_errors(editor):
    edit_id = editor.add_edit(QUESTION, "Jane Austen")
    assert isinstance(edit_id, str) and editor.edit_ids() == [edit_id]
    assert editor.query(QUESTION).edit_id == edit_id
    for bad in (int(edit_id), "x", "-1", str(2**70), "١", None):
        with pytest.raises(KeyError):
            editor.remove_edit(bad)
    assert editor.edit_ids() == [edit_id]


def test_an_editor_saved_before_the_layout_move_loads(editor, tmp_path):
    """Editors saved before the move wrote the base model as `base_model` in editor.json."""
    editor.add_edit(QUESTION, "Jane Austen")
    editor.save(tmp_path / "saved")
    config_file = tmp_path / "saved" / "editor.json"
    body = json.loads(config_file.read_text())
    body["config"]["base_model"] = body["config"].pop("model_name")
    config_file.write_text(json.dumps(body))
    loaded = SERAC.load(tmp_path / "saved", device="cpu")
    try:
        assert loaded.config == editor.config
        assert loaded.edit_ids() == editor.edit_ids()
    finally:
        loaded.close()


@pytest.mark.parametrize(
    "prompt,target,error,message",
    [
        ("", "x", ValueError, "empty"),
        ("   \n", "x", ValueError, "empty"),
        (QUESTION, "  ", ValueError, "empty"),
        (42, "x", TypeError, "must be a string"),
        (QUESTION, None, TypeError, "must be a string"),
        ("x" * 5000, "y", ValueError, "limit is"),
    ],
)
def test_bad_edits_are_rejected_and_nothing_is_stored(editor, prompt, target, error, message):
    with pytest.raises(error, match=message):
        editor.add_edit(prompt, target)
    assert editor.edit_ids() == []


def test_bad_queries_are_rejected(editor):
    with pytest.raises(ValueError, match="empty"):
        editor.query(" ")
    with pytest.raises(TypeError, match="must be a string"):
        editor.query_batch([QUESTION, b"bytes"])
    with pytest.raises(ValueError, match="max_new_tokens must be an int from 1 to"):
        editor.query(QUESTION, max_new_tokens=-1)


def test_loading_a_folder_that_is_not_a_saved_editor_is_a_clear_error(tmp_path):
    with pytest.raises(NotASavedEditorError, match="not a saved editor"):
        SERAC.load(tmp_path)
    (tmp_path / "editor.json").write_text("{broken")
    with pytest.raises(NotASavedEditorError, match="corrupt"):
        SERAC.load(tmp_path)


def test_a_memory_built_with_another_encoder_is_refused(editor, tmp_path):
    editor.add_edit(QUESTION, "Jane Austen")
    editor.save(tmp_path / "saved")
    other = SERAC.from_pretrained(tiny_config(), device="cpu", memory_path=tmp_path / "other")
    with torch.no_grad():
        for parameter in other.classifier.embedder.parameters():
            parameter.add_(0.01)  # a differently trained embedder
    other.close()
    with pytest.raises(EncoderMismatchError):
        SERAC(other.config, other.base, other.counterfactual, other.classifier, memory_path=tmp_path / "saved" / "memory")


def test_configure_changes_routing_settings_and_rejects_the_rest(editor):
    editor.configure(conflicts="closest", top_k=3)
    assert editor.router.config.conflicts == "closest" and editor.config.top_k == 3
    with pytest.raises(ValueError, match="cannot change \\['model_name'\\]"):
        editor.configure(model_name="gpt2")
    with pytest.raises(ValueError, match="conflicts must be"):
        editor.configure(conflicts="oldest")


def test_the_newest_covering_edit_is_found_beyond_the_first_top_k_candidates(editor):
    editor.configure(threshold=0.0, conflict_margin=1e9, top_k=2)  # every edit covers every query
    editor.add_edits([(f"Who wrote Hamlet, part {i}?", f"author {i}") for i in range(8)])
    newest = editor.add_edit("Who painted the Mona Lisa?", "Leonardo")
    assert editor.query(QUESTION).edit_id == newest  # not among the 2 nearest by embedding


def test_memory_stats_say_how_the_memory_searches(editor):
    editor.add_edits([(QUESTION, "Jane Austen"), ("Who wrote Hamlet?", "Ada Lovelace")])
    stats = editor.memory_stats()
    assert stats["edits"] == 2 and stats["index_kind"] == "auto" and stats["search"] == "exact"
    assert stats["building_index"] is False and stats["approximation"] is None


def test_candidates_under_the_embedding_floor_are_out_of_scope_without_the_cross_encoder(editor, monkeypatch):
    editor.configure(rerank=True, threshold=0.0)  # the cross-encoder finds every candidate in scope
    edit_id = editor.add_edit(QUESTION, "Jane Austen")
    scored = []
    cross_logits = editor.classifier.cross_logits
    monkeypatch.setattr(editor.classifier, "cross_logits", lambda edits, queries: (scored.extend(queries), cross_logits(edits, queries))[1])
    assert editor.query(UNRELATED).edit_id == edit_id and scored == [UNRELATED]  # no floor: re-scored, routed
    scored.clear()
    editor.configure(embedding_floor=0.999)
    assert editor.query(UNRELATED).edit_id is None and scored == []  # under the floor: never re-scored
    assert editor.query(QUESTION).edit_id == edit_id and scored == [QUESTION]  # its own prompt: cosine 1
    with pytest.raises(ValueError, match="embedding_floor"):
        editor.configure(embedding_floor=1.5)
