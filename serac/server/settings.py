"""The settings of one server, checked when they are made: a bad value is refused at start-up,
not discovered by the first client."""

from dataclasses import dataclass, field
from pathlib import Path

from index.validation import MAX_TEXT_CHARS
from serac.core.setting_checks import MAX_NEW_TOKENS, check_bool, check_int, check_name, check_real

MIN_TOKEN_CHARS = 16  # a shorter bearer token can be guessed


@dataclass(frozen=True)
class ServerSettings:
    """Everything `create_app` needs besides the editor.

    `token` guards every mutating endpoint (and the reads unless `open_reads`); it is kept out
    of `repr` so that logging the settings never logs it. The limits bound what one request
    may ask of the server: its body, a prompt, an answer's length, edits per request, a page.
    Concurrent queries are gathered for up to `batch_window_ms` into batches of at most
    `max_batch` prompts. `upstream_url` names an OpenAI-compatible server that answers the
    queries no stored edit covers (memory editors only, see `serac.server.upstream`).
    """

    editor_path: Path
    token: str = field(repr=False)
    model_id: str = ""  # the name /v1/models lists; the editor folder's name when empty
    open_reads: bool = False
    max_body_bytes: int = 1_000_000
    max_prompt_chars: int = MAX_TEXT_CHARS
    max_tokens: int = 256
    max_edits_per_request: int = 256
    max_page_size: int = 500
    max_batch: int = 16
    batch_window_ms: float = 5.0
    upstream_url: str | None = None
    upstream_model: str | None = None
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_timeout_s: float = 60.0

    def __post_init__(self):
        object.__setattr__(self, "editor_path", Path(self.editor_path))
        if not isinstance(self.token, str) or len(self.token.strip()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"the bearer token must be a string of at least {MIN_TOKEN_CHARS} characters "
                "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        object.__setattr__(self, "token", self.token.strip())
        if not isinstance(self.model_id, str):
            raise ValueError(f"model_id must be a string, got {self.model_id!r}")
        if not self.model_id:
            object.__setattr__(self, "model_id", self.editor_path.resolve().name or "serac")
        check_bool(self.open_reads, "open_reads")
        check_int(self.max_body_bytes, "max_body_bytes", 1024, 100_000_000)
        check_int(self.max_prompt_chars, "max_prompt_chars", 1, MAX_TEXT_CHARS)
        check_int(self.max_tokens, "max_tokens", 1, MAX_NEW_TOKENS)
        check_int(self.max_edits_per_request, "max_edits_per_request", 1, 10_000)
        check_int(self.max_page_size, "max_page_size", 1, 100_000)
        check_int(self.max_batch, "max_batch", 1, 1024)
        check_real(self.batch_window_ms, "batch_window_ms", 0.0, 1000.0)
        check_real(self.upstream_timeout_s, "upstream_timeout_s", 0.1, 3600.0)
        if self.upstream_url is not None:
            check_name(self.upstream_url, "upstream_url")
            if not self.upstream_url.startswith(("http://", "https://")):
                raise ValueError(f"upstream_url must start with http:// or https://, got {self.upstream_url!r}")
            object.__setattr__(self, "upstream_url", self.upstream_url.rstrip("/"))
        if self.upstream_model is not None:
            check_name(self.upstream_model, "upstream_model")
