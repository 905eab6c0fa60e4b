"""The bearer token: read from a file or an environment variable, compared in constant time,
never logged, never echoed in an error."""

import hmac
import os
from pathlib import Path

from fastapi import Request

from serac.server.errors import ApiError

TOKEN_ENV = "SERAC_SERVE_TOKEN"


class TokenError(ValueError):
    """No usable token was configured."""


def read_token(token_file: str | Path | None, environ=os.environ) -> str:
    """The token from `token_file` (its first line) if given, else from $SERAC_SERVE_TOKEN."""
    if token_file is not None:
        path = Path(token_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise TokenError(f"cannot read the token file {path}: {error}") from None
        if not lines or not lines[0].strip():
            raise TokenError(f"the token file {path} is empty")
        return lines[0].strip()
    token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise TokenError(
            f"serac-serve needs a bearer token for its edit API: set ${TOKEN_ENV} or pass --token-file "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


OPEN_PATHS = ("/health", "/", "/favicon.ico")
OPEN_PREFIXES = ("/page/",)  # the operator page's static files; the page sends the token it is given


class BearerAuth:
    """Checks `Authorization: Bearer <token>` before a request is parsed: changes to edits always
    need it; everything else but health and the static page needs it unless reads are open."""

    def __init__(self, token: str, open_reads: bool):
        self._token = token.encode("utf-8")
        self.open_reads = open_reads

    def needs_token(self, method: str, path: str) -> bool:
        if path.startswith("/v1/edits") and method not in ("GET", "HEAD"):
            return True
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or path == "/page":
            return False
        return not self.open_reads

    def require(self, request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "this endpoint needs an 'Authorization: Bearer <token>' header")
        # Headers arrive decoded as latin-1; encoding back gives the bytes the client sent.
        if not hmac.compare_digest(given.strip().encode("latin-1", "replace"), self._token):
            raise ApiError(401, "the bearer token is not the server's token")
