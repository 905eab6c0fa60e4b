"""A sweep of bad requests: each is a 4xx in the OpenAI error shape with a message saying what
is wrong, and none stores anything."""

import json

import pytest

from tests.serac.server.conftest import AUTH, TOKEN, served

JSON = {"Content-Type": "application/json"}
EDIT = {"prompt": "Who wrote Hamlet?", "target": "Ada Lovelace"}
LIMITS = {"max_body_bytes": 4096, "max_prompt_chars": 200, "max_tokens": 16, "max_edits_per_request": 3, "max_batch": 4}

# (name, method, path, request arguments, status, a fragment of the message)
CASES = [
    ("no token", "POST", "/v1/edits", {"json": EDIT}, 401, "Authorization: Bearer"),
    ("wrong token", "POST", "/v1/edits", {"json": EDIT, "headers": {"Authorization": "Bearer not-the-token-000000"}}, 401, "not the server's token"),
    ("token prefix", "POST", "/v1/edits", {"json": EDIT, "headers": {"Authorization": f"Bearer {TOKEN[:-1]}"}}, 401, "not the server's token"),
    ("basic scheme", "POST", "/v1/edits", {"json": EDIT, "headers": {"Authorization": f"Basic {TOKEN}"}}, 401, "Authorization: Bearer"),
    ("non-ascii token", "POST", "/v1/edits", {"json": EDIT, "headers": {"Authorization": "Bearer tökén-ünïcode-0123456789".encode()}}, 401, "not the server's token"),
    ("delete without token", "DELETE", "/v1/edits/1", {}, 401, "Authorization: Bearer"),
    ("read without token", "GET", "/v1/edits", {}, 401, "Authorization: Bearer"),
    ("query without token", "POST", "/v1/completions", {"json": {"prompt": "Hi?"}}, 401, "Authorization: Bearer"),
    ("oversized body", "POST", "/v1/edits", {"json": {"prompt": "x" * 5000, "target": "y"}}, 413, "larger than the server's limit of 4096"),
    ("oversized body, no length", "POST", "/v1/edits", {"content": iter([b'{"prompt": "', b"x" * 5000, b'"}']), "headers": JSON}, 413, "larger than"),
    ("not JSON", "POST", "/v1/edits", {"content": b"{not json", "headers": JSON}, 400, "not valid JSON"),
    ("not an object", "POST", "/v1/edits", {"content": b"[1, 2]", "headers": JSON}, 400, "JSON object"),
    ("no content type", "POST", "/v1/edits", {"content": json.dumps(EDIT).encode()}, 400, "JSON object"),
    ("target missing", "POST", "/v1/edits", {"json": {"prompt": "Who?"}}, 400, "needs a prompt and a target"),
    ("prompt a number", "POST", "/v1/edits", {"json": {"prompt": 42, "target": "x"}}, 400, "prompt: Input should be a valid string"),
    ("unknown field", "POST", "/v1/edits", {"json": {**EDIT, "promt": "typo"}}, 400, "promt: Extra inputs are not permitted"),
    ("empty prompt", "POST", "/v1/edits", {"json": {"prompt": "   ", "target": "x"}}, 400, "must not be empty"),
    ("lone surrogate", "POST", "/v1/edits", {"content": b'{"prompt": "bad \\ud800 text", "target": "x"}', "headers": JSON}, 400, "surrogate"),
    ("invalid UTF-8", "POST", "/v1/edits", {"content": b'{"prompt": "\xff\xfe", "target": "x"}', "headers": JSON}, 400, "error parsing the body"),
    ("prompt too long", "POST", "/v1/edits", {"json": {"prompt": "é" * 201, "target": "x"}}, 400, "the limit is 200"),
    ("single and batch", "POST", "/v1/edits", {"json": {**EDIT, "edits": [EDIT]}}, 400, "not both"),
    ("empty batch", "POST", "/v1/edits", {"json": {"edits": []}}, 400, "1 to 3 edits"),
    ("batch too big", "POST", "/v1/edits", {"json": {"edits": [EDIT] * 4}}, 400, "1 to 3 edits"),
    ("edits not a list", "POST", "/v1/edits", {"json": {"edits": "Who?"}}, 400, "edits: Input should be a valid list"),
    ("subject a list", "POST", "/v1/edits", {"json": {**EDIT, "subject": ["Hamlet"]}}, 400, "subject"),
    ("max_tokens too large", "POST", "/v1/completions", {"json": {"prompt": "Hi?", "max_tokens": 17}}, 400, "max_tokens must be from 1 to 16"),
    ("max_tokens a string", "POST", "/v1/completions", {"json": {"prompt": "Hi?", "max_tokens": "5"}}, 400, "max_tokens: Input should be a valid integer"),
    ("max_tokens zero", "POST", "/v1/completions", {"json": {"prompt": "Hi?", "max_tokens": 0}}, 400, "max_tokens must be from 1"),
    ("max_tokens a bool", "POST", "/v1/completions", {"json": {"prompt": "Hi?", "max_tokens": True}}, 400, "max_tokens"),
    ("too many prompts", "POST", "/v1/completions", {"json": {"prompt": ["Hi?"] * 5}}, 400, "list of 1 to 4 strings"),
    ("n > 1", "POST", "/v1/completions", {"json": {"prompt": "Hi?", "n": 2}}, 400, "n: Input should be 1"),
    ("stream a string", "POST", "/v1/completions", {"json": {"prompt": "Hi?", "stream": "yes"}}, 400, "stream: Input should be a valid boolean"),
    ("chat ends with assistant", "POST", "/v1/chat/completions", {"json": {"messages": [{"role": "assistant", "content": "Hi"}]}}, 400, "last message must be the user's"),
    ("chat without messages", "POST", "/v1/chat/completions", {"json": {"messages": []}}, 400, "messages"),
    ("chat unknown role", "POST", "/v1/chat/completions", {"json": {"messages": [{"role": "robot", "content": "Hi"}]}}, 400, "role"),
    ("unknown model", "POST", "/v1/chat/completions", {"json": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}}, 404, "does not exist here"),
    ("negative offset", "GET", "/v1/edits?offset=-1", {}, 400, "offset must be >= 0"),
    ("limit a word", "GET", "/v1/edits?limit=many", {}, 400, "limit: Input should be a valid integer"),
    ("limit too large", "GET", "/v1/edits?limit=100000", {}, 400, "limit must be from 1 to"),
    ("unknown path", "GET", "/v1/secrets", {}, 404, "Not Found"),
    ("wrong method", "PUT", "/v1/edits", {"json": EDIT}, 405, "Method Not Allowed"),
]


def test_the_sweep_has_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.fixture(scope="module")
def sweep_client(saved_tiny_serac, tmp_path_factory):
    import shutil

    folder = tmp_path_factory.mktemp("sweep") / "editor"
    shutil.copytree(saved_tiny_serac, folder)
    with served(folder, **LIMITS) as client:
        yield client


@pytest.mark.parametrize(("name", "method", "path", "arguments", "status", "fragment"), CASES, ids=[case[0] for case in CASES])
def test_a_bad_request_is_a_clear_4xx_and_stores_nothing(sweep_client, name, method, path, arguments, status, fragment):
    arguments = dict(arguments)
    needs_token = name not in {"no token", "wrong token", "token prefix", "basic scheme", "non-ascii token",
                               "delete without token", "read without token", "query without token"}
    arguments["headers"] = {**(AUTH if needs_token else {}), **arguments.get("headers", {})}
    response = sweep_client.request(method, path, **arguments)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"] and error["code"] == status
    assert "Traceback" not in response.text and TOKEN not in response.text
    assert sweep_client.get("/v1/edits", headers=AUTH).json()["total"] == 0


def test_no_request_of_the_sweep_failed_on_the_server(sweep_client):
    metrics = sweep_client.get("/metrics", headers=AUTH).text
    assert 'status="500"' not in metrics
    assert 'serac_http_requests_total{method="POST",route="/v1/edits",status="400"}' in metrics
    assert 'serac_http_requests_total{method="POST",route="unmatched",status="401"}' in metrics  # refused before routing
