"""SERAC routing in front of an upstream OpenAI-compatible base model: here the upstream is a
second server of our own, serving an unedited model (a FT editor without edits)."""

from contextlib import contextmanager

import httpx
import openai
import pytest

from mend.finetune import FTEditor
from serac.server import ServerSettings, create_app
from serac.server.answers import UpstreamNeedsMemoryEditorError
from tests.serac.server.conftest import AUTH, TOKEN, free_port, live_editor_server, load_editor


@pytest.fixture
def base_model_folder(tmp_path):
    folder = tmp_path / "base"
    FTEditor.from_pretrained("tiny-gpt2").save(folder)
    return folder


@contextmanager
def front_and_upstream(serac_folder, base_model_folder):
    with live_editor_server(base_model_folder, max_tokens=64) as (upstream_url, _), \
            live_editor_server(serac_folder, upstream_url=f"{upstream_url}/v1", upstream_api_key=TOKEN) as (front_url, _):
        yield front_url, upstream_url


def test_covered_queries_are_answered_here_and_the_rest_upstream(serac_folder, base_model_folder):
    with front_and_upstream(serac_folder, base_model_folder) as (front, upstream):
        edit_id = httpx.post(f"{front}/v1/edits", json={"prompt": "Who wrote Hamlet?", "target": "Ada Lovelace"}, headers=AUTH).json()["data"][0]["id"]
        client = openai.OpenAI(base_url=f"{front}/v1", api_key=TOKEN)
        direct = openai.OpenAI(base_url=f"{upstream}/v1", api_key=TOKEN)

        covered, other = client.completions.create(model="editor", prompt=["Who wrote Hamlet?", "Where is Paris?"], max_tokens=3).choices
        assert covered.model_extra["serac"] == {**covered.model_extra["serac"], "routed": True, "edit_id": edit_id, "answered_by": "edit"}
        assert other.model_extra["serac"] == {"routed": False, "edit_id": None, "scope_score": None, "answered_by": "upstream"}
        assert other.text == direct.completions.create(model="base", prompt="Where is Paris?", max_tokens=3).choices[0].text

        conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is Rome?"}]
        chat = client.chat.completions.create(model="editor", messages=conversation, max_tokens=4).choices[0]
        assert chat.model_extra["serac"]["answered_by"] == "upstream"
        assert chat.message.content == direct.chat.completions.create(model="base", messages=conversation, max_tokens=4).choices[0].message.content
        edited = client.chat.completions.create(model="editor", messages=[{"role": "user", "content": "Who wrote Hamlet?"}]).choices[0]
        assert edited.model_extra["serac"]["answered_by"] == "edit"

        metrics = httpx.get(f"{front}/metrics", headers=AUTH).text
        assert 'serac_answers_total{answered_by="upstream"} 2.0' in metrics and 'serac_answers_total{answered_by="edit"} 2.0' in metrics


def test_an_unreachable_upstream_is_a_502_with_a_message(serac_folder):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with live_editor_server(serac_folder, upstream_url=dead, upstream_model="base") as (front, _):
        response = httpx.post(f"{front}/v1/completions", json={"prompt": "Where is Paris?"}, headers=AUTH)
    assert response.status_code == 502 and "did not answer" in response.json()["error"]["message"]


def test_a_weight_editor_cannot_sit_in_front_of_an_upstream(base_model_folder):
    editor = load_editor(base_model_folder)
    with pytest.raises(UpstreamNeedsMemoryEditorError, match="edits are in its local weights"):
        create_app(editor, ServerSettings(editor_path=base_model_folder, token=TOKEN, upstream_url="http://127.0.0.1:1/v1"))
