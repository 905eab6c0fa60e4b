"""The official `openai` client, unmodified, against a real server on 127.0.0.1."""

import httpx
import openai
import pytest

from tests.serac.server.conftest import AUTH, TOKEN, live_editor_server


@pytest.fixture
def server(serac_folder):
    with live_editor_server(serac_folder) as (url, editor):
        yield url, editor


def test_completions_chat_and_models_through_the_openai_client(server):
    url, editor = server
    edit_id = httpx.post(f"{url}/v1/edits", json={"prompt": "Who wrote Hamlet?", "target": "Ada Lovelace"}, headers=AUTH).json()["data"][0]["id"]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN)
    assert [model.id for model in client.models.list()] == ["editor"]

    completion = client.completions.create(model="editor", prompt=["Who wrote Hamlet?", "Where is Paris?"], max_tokens=3)
    expected = editor.query_batch(["Who wrote Hamlet?", "Where is Paris?"], max_new_tokens=3)
    assert [choice.text for choice in completion.choices] == [result.text for result in expected]
    routed, unrouted = (choice.model_extra["serac"] for choice in completion.choices)
    assert routed["routed"] and routed["edit_id"] == edit_id and not unrouted["routed"] and unrouted["edit_id"] is None

    chat = client.chat.completions.create(model="editor", messages=[{"role": "system", "content": "Be brief."},
                                                                    {"role": "user", "content": "Who wrote Hamlet?"}])
    assert chat.choices[0].message.content == editor.query("Who wrote Hamlet?").text
    assert chat.choices[0].model_extra["serac"]["edit_id"] == edit_id


def test_streamed_answers_are_the_plain_answers(server):
    url, editor = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN)
    question = "Who was the first person on the moon?"
    plain = client.chat.completions.create(model="editor", messages=[{"role": "user", "content": question}]).choices[0].message.content
    chunks = list(client.chat.completions.create(model="editor", messages=[{"role": "user", "content": question}], stream=True))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == plain == editor.query(question).text
    assert chunks[-1].choices[0].finish_reason == "stop"
    streamed = "".join(chunk.choices[0].text for chunk in client.completions.create(model="editor", prompt=question, stream=True))
    assert streamed == plain


def test_refusals_reach_the_client_as_its_own_errors(server):
    url, _ = server
    with pytest.raises(openai.AuthenticationError, match="not the server's token"):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong-token-0123456789").models.list()
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN)
    with pytest.raises(openai.BadRequestError, match="max_tokens must be from 1 to 256"):
        client.completions.create(model="editor", prompt="Hi?", max_tokens=100_000)
    with pytest.raises(openai.NotFoundError, match="does not exist here"):
        client.completions.create(model="gpt-4o", prompt="Hi?")
