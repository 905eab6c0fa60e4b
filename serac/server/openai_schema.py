"""The request bodies the server accepts, as strict pydantic models (a string is never read as a
number, an unknown field is refused), and the OpenAI-shaped answers it sends.

Sampling settings OpenAI clients may send (`temperature`, `top_p`, `seed`, penalties, `user`)
are accepted and have no effect: every editor answers greedily. Limits that depend on the
server's settings (prompt length, `max_tokens`, counts) are checked by the app.
"""

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serac.server.answers import Answer


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _OpenAIRequest(_Strict):
    model: str | None = None
    max_tokens: int | None = None
    stream: bool = False
    stop: str | list[str] | None = None
    n: Literal[1] = 1  # one greedy answer per prompt; any other n is refused
    stream_options: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None


class CompletionRequest(_OpenAIRequest):
    prompt: str | list[str]


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class ChatRequest(_OpenAIRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None


class EditIn(_Strict):
    prompt: str
    target: str
    subject: str | None = None


class EditsRequest(_Strict):
    """One edit (`prompt`, `target`, optional `subject`) or a batch (`edits`: a list of them)."""

    prompt: str | None = None
    target: str | None = None
    subject: str | None = None
    edits: list[EditIn] | None = None


def message_text(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text for part in message.content)


def serac_field(answer: Answer) -> dict:
    """The extension every answer carries: whether a stored edit answered it, and which."""
    return {"routed": answer.routed, "edit_id": answer.edit_id, "scope_score": answer.scope_score, "answered_by": answer.answered_by}


def _envelope(kind: str, prefix: str, model: str) -> dict:
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": model}


def completion_response(model: str, answers: list[Answer]) -> dict:
    choices = [
        {"index": i, "text": answer.text, "logprobs": None, "finish_reason": "stop", "serac": serac_field(answer)}
        for i, answer in enumerate(answers)
    ]
    return {**_envelope("text_completion", "cmpl", model), "choices": choices}


def chat_response(model: str, answer: Answer) -> dict:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": answer.text},
        "logprobs": None,
        "finish_reason": "stop",
        "serac": serac_field(answer),
    }
    return {**_envelope("chat.completion", "chatcmpl", model), "choices": [choice]}


def completion_chunks(model: str, answers: list[Answer]) -> list[dict]:
    """Server-sent events of a streamed completion: each answer's pieces, then its finish."""
    envelope = _envelope("text_completion", "cmpl", model)
    chunks = []
    for i, answer in enumerate(answers):
        for piece in _pieces(answer.text):
            chunks.append({**envelope, "choices": [{"index": i, "text": piece, "logprobs": None, "finish_reason": None, "serac": serac_field(answer)}]})
        chunks.append({**envelope, "choices": [{"index": i, "text": "", "logprobs": None, "finish_reason": "stop", "serac": serac_field(answer)}]})
    return chunks


def chat_chunks(model: str, answer: Answer) -> list[dict]:
    envelope = _envelope("chat.completion.chunk", "chatcmpl", model)
    extension = serac_field(answer)

    def chunk(delta: dict, finish: str | None) -> dict:
        return {**envelope, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, "serac": extension}]}

    return [
        chunk({"role": "assistant", "content": ""}, None),
        *(chunk({"content": piece}, None) for piece in _pieces(answer.text)),
        chunk({}, "stop"),
    ]


def _pieces(text: str) -> list[str]:
    """The answer in word-sized pieces (each keeps its leading space), as a streaming client expects."""
    pieces, start = [], 0
    for position in range(1, len(text) + 1):
        if position == len(text) or (text[position] == " " and text[position - 1] != " "):
            pieces.append(text[start:position])
            start = position
    return pieces
