"""The token: from a file or the environment, required for edits, for reads unless they are open,
never in a log or a repr; settings and the command line refuse bad values at start-up."""

import logging

import pytest

from serac.server import ServerSettings
from serac.server.auth import TOKEN_ENV, TokenError, read_token
from serac.server.cli import serve_main
from tests.serac.server.conftest import AUTH, TOKEN, served


def test_the_token_comes_from_a_file_or_the_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}  \nignored second line\n")
    assert read_token(token_file, environ={}) == TOKEN
    assert read_token(None, environ={TOKEN_ENV: TOKEN}) == TOKEN
    with pytest.raises(TokenError, match=TOKEN_ENV):
        read_token(None, environ={})
    with pytest.raises(TokenError, match="cannot read the token file"):
        read_token(tmp_path / "missing", environ={})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(TokenError, match="is empty"):
        read_token(tmp_path / "empty", environ={})


def test_settings_refuse_weak_tokens_and_bad_limits_and_hide_the_token(tmp_path):
    with pytest.raises(ValueError, match="at least 16 characters"):
        ServerSettings(editor_path=tmp_path, token="short")
    with pytest.raises(ValueError, match="max_tokens must be an int from 1 to 512"):
        ServerSettings(editor_path=tmp_path, token=TOKEN, max_tokens=10_000)
    with pytest.raises(ValueError, match="upstream_url must start with http"):
        ServerSettings(editor_path=tmp_path, token=TOKEN, upstream_url="ftp://somewhere")
    settings = ServerSettings(editor_path=tmp_path / "my-editor", token=TOKEN, upstream_api_key="upstream-secret")
    assert TOKEN not in repr(settings) and "upstream-secret" not in repr(settings) and settings.model_id == "my-editor"


def test_open_reads_answer_without_a_token_but_edits_still_need_it(serac_folder):
    with served(serac_folder, open_reads=True) as client:
        assert client.post("/v1/completions", json={"prompt": "Hi?"}).status_code == 200
        assert client.get("/v1/edits").status_code == 200
        assert client.post("/v1/edits", json={"prompt": "Hi?", "target": "Ho"}).status_code == 401
        assert client.delete("/v1/edits/1").status_code == 401
        assert client.get("/health").json()["status"] == "ok"


def test_the_token_is_never_logged(serac_folder, caplog):
    with caplog.at_level(logging.DEBUG), served(serac_folder) as client:
        client.post("/v1/edits", json={"prompt": "Hi?", "target": "Ho"}, headers=AUTH)
        client.post("/v1/edits", json={"prompt": "Hi?", "target": "Ho"}, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert TOKEN not in caplog.text


def test_the_command_line_refuses_to_start_without_a_token_or_an_editor(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(SystemExit, match="needs a bearer token"):
        serve_main([str(tmp_path)])
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with pytest.raises(SystemExit, match="is not a saved editor"):
        serve_main([str(tmp_path)])
    with pytest.raises(SystemExit, match="at least 16 characters"):
        monkeypatch.setenv(TOKEN_ENV, "short")
        serve_main([str(tmp_path)])


def test_the_operator_page_and_health_are_served(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/page/"
    page = client.get("/page/")
    assert page.status_code == 200 and "Add an edit" in page.text
    assert client.get("/page/app.js").status_code == 200
    assert client.get("/health").json() == {"status": "ok", "editor": "serac", "model": "editor"}


def test_the_token_is_checked_before_the_request_is_read(client):
    """A client without the token learns nothing about its request: not whether its body parses."""
    for method, path, body in (("POST", "/v1/edits", b"{not json"), ("POST", "/v1/edits", b"{}"), ("DELETE", "/v1/edits/1", b""),
                               ("POST", "/v1/completions", b'{"prompt": 5}'), ("GET", "/v1/edits?limit=many", b"")):
        response = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 401, (method, path, response.text)
