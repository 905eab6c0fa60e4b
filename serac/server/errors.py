"""Error responses in the OpenAI shape (`{"error": {"message", "type", "param", "code"}}`), so
OpenAI clients raise their usual exceptions with our message; never a stack trace."""

import json

from fastapi.responses import JSONResponse

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error"}


class ApiError(Exception):
    """A request the server refuses, with the status and a message for the client."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


def error_body(status: int, message: str, param: str | None = None) -> dict:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(status, message, param), status_code=status, headers=headers)


def error_bytes(status: int, message: str) -> bytes:
    """The body of an error sent before the app runs (by ASGI middleware)."""
    return json.dumps(error_body(status, message)).encode()
