"""The edit API: add one or a batch, list in pages, search, get, remove; every acknowledged edit
is in the folder (a new server over it has it) for each kind of durability."""

import pytest

from mend.finetune import FTEditor
from mend.finetune.config import FTConfig
from serac.cache import CacheEditor
from tests.serac.server.conftest import AUTH, served


def add(client, **edit):
    response = client.post("/v1/edits", json=edit, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_one_edit_is_stored_and_then_answers(client):
    (edit,) = add(client, prompt="Who wrote Hamlet?", target="Ada Lovelace", subject="Hamlet")
    assert edit == {"id": edit["id"], "object": "edit", "prompt": "Who wrote Hamlet?", "target": "Ada Lovelace", "subject": "Hamlet"}
    assert client.get(f"/v1/edits/{edit['id']}", headers=AUTH).json() == edit
    answer = client.post("/v1/completions", json={"prompt": "Who wrote Hamlet?"}, headers=AUTH).json()["choices"][0]
    assert answer["serac"] == {"routed": True, "edit_id": edit["id"], "scope_score": pytest.approx(answer["serac"]["scope_score"]), "answered_by": "edit"}
    other = client.post("/v1/completions", json={"prompt": "What is the tallest mountain?"}, headers=AUTH).json()["choices"][0]
    assert other["serac"]["routed"] is False and other["serac"]["edit_id"] is None and other["serac"]["answered_by"] == "base"


def test_a_batch_is_added_whole_and_listed_in_pages(client):
    edits = [{"prompt": f"Question number {i}?", "target": f"answer {i}"} for i in range(7)]
    added = add(client, edits=edits)
    assert [edit["prompt"] for edit in added] == [edit["prompt"] for edit in edits]
    first = client.get("/v1/edits", params={"limit": 3}, headers=AUTH).json()
    assert first["total"] == 7 and first["has_more"] and [edit["id"] for edit in first["data"]] == [edit["id"] for edit in added[:3]]
    last = client.get("/v1/edits", params={"offset": 6, "limit": 3}, headers=AUTH).json()
    assert not last["has_more"] and [edit["id"] for edit in last["data"]] == [added[6]["id"]]
    found = client.get("/v1/edits", params={"search": "NUMBER 4"}, headers=AUTH).json()
    assert [edit["id"] for edit in found["data"]] == [added[4]["id"]] and found["total"] == 1


def test_remove_deletes_one_edit_and_unknown_ids_are_404(client):
    keep, drop = add(client, edits=[{"prompt": "Keep me?", "target": "yes"}, {"prompt": "Drop me?", "target": "no"}])
    assert client.delete(f"/v1/edits/{drop['id']}", headers=AUTH).json() == {"id": drop["id"], "object": "edit.deleted", "deleted": True}
    assert [edit["id"] for edit in client.get("/v1/edits", headers=AUTH).json()["data"]] == [keep["id"]]
    for unknown in (drop["id"], "no-such-id", "99999999999999999999999"):
        assert client.delete(f"/v1/edits/{unknown}", headers=AUTH).status_code == 404
        response = client.get(f"/v1/edits/{unknown}", headers=AUTH)
        assert response.status_code == 404 and "no edit with id" in response.json()["error"]["message"]


def test_acknowledged_serac_edits_are_in_the_folder_for_the_next_server(serac_folder):
    with served(serac_folder) as client:
        ids = [edit["id"] for edit in add(client, edits=[{"prompt": f"Fact {i}?", "target": f"value {i}"} for i in range(3)])]
        client.delete(f"/v1/edits/{ids[1]}", headers=AUTH)
    with served(serac_folder) as client:
        assert [edit["id"] for edit in client.get("/v1/edits", headers=AUTH).json()["data"]] == [ids[0], ids[2]]


@pytest.mark.parametrize("kind", ["ft", "cache"])
def test_editors_saved_after_each_change_keep_acknowledged_edits(kind, tmp_path, tiny_lm):
    """A weight editor (FT) and the cache (which works on a copy of its memory) are saved over
    their folder after each change; files the editor does not write are kept."""
    folder = tmp_path / kind
    if kind == "ft":
        editor = FTEditor(tiny_lm("tiny-llama"), FTConfig(model_name="tiny-llama", steps=1))
    else:
        editor = CacheEditor.from_pretrained("tiny-llama")
    editor.save(folder)
    (folder / "calibration.json").write_text("{}")
    with served(folder) as client:
        first = add(client, prompt="Who wrote Hamlet?", target="Ada Lovelace")[0]["id"]
        second = add(client, prompt="Who painted the Mona Lisa?", target="Grace Hopper")[0]["id"]
        assert client.delete(f"/v1/edits/{first}", headers=AUTH).status_code == 200
    with served(folder) as client:
        stored = client.get("/v1/edits", headers=AUTH).json()["data"]
    assert [(edit["id"], edit["target"]) for edit in stored] == [(second, "Grace Hopper")]
    assert (folder / "calibration.json").read_text() == "{}"
    assert not [path for path in folder.parent.iterdir() if path.name.startswith(".")]  # no staging folder left
