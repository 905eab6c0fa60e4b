"""The FastAPI app: OpenAI-compatible answers, the edit API, health, metrics and the operator page.

    app = create_app(editor, ServerSettings(editor_path=folder, token=token))

Queries go through the batcher (`serac.server.answers`), edits through the one writer
(`serac.server.edit_writer`). Every refusal is a 4xx in the OpenAI error shape with a
message; an unexpected failure is a 500 whose details stay in the server's log.
"""

import json
import logging
import threading
import time
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from serac.core.editor import Editor, StoredEdit
from serac.core.memory_editor import MemoryEditor
from serac.core.records import EditRequest
from serac.core.text_checks import check_text
from serac.server.answers import Answer, Answerer
from serac.server.auth import BearerAuth
from serac.server.body_limit import BodySizeLimit
from serac.server.edit_writer import EditWriter
from serac.server.errors import ApiError, error_response
from serac.server.metrics import ServerMetrics
from serac.server.openai_schema import (
    ChatRequest,
    CompletionRequest,
    EditsRequest,
    chat_chunks,
    chat_response,
    completion_chunks,
    completion_response,
    message_text,
)
from serac.server.settings import ServerSettings
from serac.server.upstream import Upstream

PAGE_FOLDER = Path(__file__).parent / "page"
MAX_STOP_SEQUENCES = 4  # as OpenAI
log = logging.getLogger(__name__)


def create_app(editor: Editor, settings: ServerSettings) -> FastAPI:
    metrics = ServerMetrics()
    auth = BearerAuth(settings.token, settings.open_reads)
    # A memory orders its own changes; an editor that writes weights in place takes turns with queries.
    model_turn = nullcontext() if isinstance(editor, MemoryEditor) else threading.Lock()
    upstream = None
    if settings.upstream_url is not None:
        upstream = Upstream(settings.upstream_url, settings.upstream_model, settings.upstream_api_key, settings.upstream_timeout_s)
    answerer = Answerer(editor, model_turn, settings.max_batch, settings.batch_window_ms / 1000, upstream, metrics.batch_size.observe)
    writer = EditWriter(editor, settings.editor_path, model_turn)
    metrics.edits_stored.set_function(lambda: len(editor.edit_ids()))
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(_app):
        answerer.start()
        yield
        await answerer.stop()
        writer.stop()

    app = FastAPI(title="serac-serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    # -- errors ------------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def refused(_request, error: ApiError):
        return error_response(error.status, error.message, error.param)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, error: RequestValidationError):
        return error_response(400, validation_message(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, error: StarletteHTTPException):
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return error_response(500, "the server failed to answer this request; the details are in its log")

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        # Before the body is parsed: a client without the token learns nothing about its request.
        if auth.needs_token(request.method, request.scope["path"]):
            try:
                auth.require(request)
            except ApiError as error:
                return error_response(error.status, error.message)
        return await call_next(request)

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        began = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            metrics.observe_request(route.path if route is not None else "unmatched", request.method, status, time.perf_counter() - began)

    # -- checks ------------------------------------------------------------------------

    def text(value, what: str) -> str:
        try:
            return check_text(value, what, settings.max_prompt_chars)
        except (TypeError, ValueError) as error:
            raise ApiError(400, str(error), what) from None

    def answer_length(max_tokens: int | None) -> int | None:
        if max_tokens is not None and not 1 <= max_tokens <= settings.max_tokens:
            raise ApiError(400, f"max_tokens must be from 1 to {settings.max_tokens}, got {max_tokens}", "max_tokens")
        return max_tokens

    def stop_sequences(stop: str | list[str] | None) -> list[str]:
        sequences = [stop] if isinstance(stop, str) else list(stop or [])
        if len(sequences) > MAX_STOP_SEQUENCES:
            raise ApiError(400, f"stop takes at most {MAX_STOP_SEQUENCES} sequences, got {len(sequences)}", "stop")
        return [text(sequence, "stop") for sequence in sequences]

    def served_model(model: str | None) -> None:
        if model is not None and model != settings.model_id:
            raise ApiError(404, f"the model {model!r} does not exist here; this server serves {settings.model_id!r}", "model")

    def counted(answers: list[Answer]) -> list[Answer]:
        for answer in answers:
            metrics.answers.labels(answer.answered_by).inc()
        return answers

    # -- health, metrics, models ---------------------------------------------------------

    @app.get("/health")
    async def health():
        return {"status": "ok", "editor": editor.name, "model": settings.model_id}

    @app.get("/metrics")
    async def metrics_text():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def models():
        card = {"id": settings.model_id, "object": "model", "created": started, "owned_by": "serac",
                "serac": {"editor": editor.name, "upstream": settings.upstream_url is not None}}
        return {"object": "list", "data": [card]}

    # -- answers -------------------------------------------------------------------------

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        served_model(body.model)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not 1 <= len(prompts) <= settings.max_batch:
            raise ApiError(400, f"prompt must be a string or a list of 1 to {settings.max_batch} strings", "prompt")
        prompts = [text(prompt, "prompt") for prompt in prompts]
        answers = counted(await answerer.complete(prompts, answer_length(body.max_tokens), stop_sequences(body.stop)))
        if body.stream:
            return event_stream(completion_chunks(settings.model_id, answers))
        return completion_response(settings.model_id, answers)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest):
        served_model(body.model)
        if body.messages[-1].role != "user":
            raise ApiError(400, "the last message must be the user's question (role 'user')", "messages")
        messages = [{"role": message.role, "content": text(message_text(message), "message content")} for message in body.messages]
        max_tokens = answer_length(body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens)
        (answer,) = counted([await answerer.chat(messages[-1]["content"], messages, max_tokens, stop_sequences(body.stop))])
        if body.stream:
            return event_stream(chat_chunks(settings.model_id, answer))
        return chat_response(settings.model_id, answer)

    # -- edits ---------------------------------------------------------------------------

    @app.post("/v1/edits", status_code=201)
    async def add_edits(body: EditsRequest):
        requests = edit_requests(body)
        try:
            ids = await writer.add(requests)
        except (TypeError, ValueError) as error:  # the editor refuses the edit (e.g. ROME without a subject)
            raise ApiError(400, str(error)) from None
        metrics.edits_added.inc(len(ids))
        data = [edit_json(StoredEdit(edit_id, edit.prompt, edit.target, edit.subject)) for edit_id, edit in zip(ids, requests)]
        return JSONResponse({"object": "list", "data": data}, status_code=201)

    def edit_requests(body: EditsRequest) -> list[EditRequest]:
        single = (body.prompt, body.target, body.subject)
        if body.edits is not None:
            if any(field is not None for field in single):
                raise ApiError(400, "give either one edit (prompt, target, subject) or a batch (edits), not both", "edits")
            edits = [(edit.prompt, edit.target, edit.subject) for edit in body.edits]
        elif body.prompt is None or body.target is None:
            raise ApiError(400, "an edit needs a prompt and a target (or give a batch as edits: [...])", "prompt" if body.prompt is None else "target")
        else:
            edits = [single]
        if not 1 <= len(edits) <= settings.max_edits_per_request:
            raise ApiError(400, f"a request adds 1 to {settings.max_edits_per_request} edits, got {len(edits)}", "edits")
        return [
            EditRequest(text(prompt, f"edit {i} prompt"), text(target, f"edit {i} target"),
                        text(subject, f"edit {i} subject") if subject is not None else None)
            for i, (prompt, target, subject) in enumerate(edits)
        ]

    @app.get("/v1/edits")
    async def list_edits(offset: int = 0, limit: int = 50, search: str = ""):
        if offset < 0:
            raise ApiError(400, f"offset must be >= 0, got {offset}", "offset")
        if not 1 <= limit <= settings.max_page_size:
            raise ApiError(400, f"limit must be from 1 to {settings.max_page_size}, got {limit}", "limit")
        if len(search) > settings.max_prompt_chars:
            raise ApiError(400, f"search is longer than {settings.max_prompt_chars} characters", "search")
        edits = await writer.read(editor.stored_edits)
        if search:
            edits = [edit for edit in edits if matches(edit, search)]
        page = edits[offset : offset + limit]
        return {"object": "list", "data": [edit_json(edit) for edit in page], "total": len(edits), "offset": offset,
                "limit": limit, "has_more": offset + len(page) < len(edits)}

    @app.get("/v1/edits/{edit_id}")
    async def get_edit(edit_id: str):
        try:
            return edit_json(await writer.read(lambda: editor.stored_edit(edit_id)))
        except KeyError:
            raise ApiError(404, f"no edit with id {edit_id!r}", "edit_id") from None

    @app.delete("/v1/edits/{edit_id}")
    async def delete_edit(edit_id: str):
        try:
            await writer.remove(edit_id)
        except KeyError:
            raise ApiError(404, f"no edit with id {edit_id!r}", "edit_id") from None
        metrics.edits_removed.inc()
        return {"id": edit_id, "object": "edit.deleted", "deleted": True}

    # -- the operator page -----------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def home():
        return RedirectResponse("/page/")

    app.mount("/page", StaticFiles(directory=PAGE_FOLDER, html=True), name="page")
    return app


def edit_json(edit: StoredEdit) -> dict:
    return {"id": edit.id, "object": "edit", "prompt": edit.prompt, "target": edit.target, "subject": edit.subject}


def matches(edit: StoredEdit, search: str) -> bool:
    needle = search.casefold()
    return any(needle in field.casefold() for field in (edit.id, edit.prompt, edit.target, edit.subject or ""))


def event_stream(chunks: list[dict]) -> StreamingResponse:
    """Server-sent events as OpenAI streams them: one `data:` line per chunk, then `data: [DONE]`."""

    async def events():
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def validation_message(errors) -> str:
    """A readable sentence from pydantic's errors: where in the request, and what is wrong."""
    parts = []
    for error in list(errors)[:3]:
        if error.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})")
            continue
        where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "body"
        if where == "body" and error.get("type") in ("dict_type", "model_attributes_type"):
            parts.append("the body must be a JSON object, sent with Content-Type: application/json")
            continue
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"
