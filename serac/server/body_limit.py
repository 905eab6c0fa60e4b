"""A bound on request bodies, enforced before the app parses anything: a declared or actual body
over the limit is answered 413 without being read further."""

from serac.server.errors import error_bytes


class BodySizeLimit:
    """Pure ASGI middleware: reads a request's body up to `max_bytes`, then hands it on whole."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            return await self._refuse(send, 400, "the Content-Length header is not a number")
        if declared is not None and int(declared) > self.max_bytes:
            return await self._refuse(send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await self._refuse(send)
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: wait for the client to go away
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send, status: int = 413, message: str | None = None):
        body = error_bytes(status, message or f"the request body is larger than the server's limit of {self.max_bytes} bytes")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
