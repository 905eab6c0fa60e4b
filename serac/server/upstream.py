"""An upstream OpenAI-compatible server (vLLM, TGI, llama.cpp's server, or another serac-serve)
that answers as the base model: the queries no stored edit covers are forwarded to it, the
others are answered here by the editor (SERAC's counterfactual model, the cache).

`url` is the OpenAI base URL of the upstream, with its `/v1` (as `OPENAI_BASE_URL`).
"""

import httpx

from serac.server.errors import ApiError


class Upstream:
    def __init__(self, url: str, model: str | None, api_key: str | None, timeout_s: float):
        self.url = url
        self._model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s)

    async def complete(self, prompt: str, max_tokens: int | None, stop: list[str] | None) -> str:
        body = await self._post("/completions", {"prompt": prompt, "max_tokens": max_tokens, "stop": stop})
        return self._field(lambda: body["choices"][0]["text"])

    async def chat(self, messages: list[dict], max_tokens: int | None, stop: list[str] | None) -> str:
        body = await self._post("/chat/completions", {"messages": messages, "max_tokens": max_tokens, "stop": stop})
        return self._field(lambda: body["choices"][0]["message"]["content"])

    async def model(self) -> str:
        """The upstream model asked for: the configured one, else the first the upstream lists."""
        if self._model is None:
            body = await self._send("GET", "/models")
            self._model = self._field(lambda: body["data"][0]["id"])
        return self._model

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, fields: dict) -> dict:
        body = {"model": await self.model(), "temperature": 0, **{key: value for key, value in fields.items() if value is not None}}
        return await self._send("POST", path, body)

    async def _send(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ApiError(502, f"the upstream model server at {self.url} did not answer: {type(error).__name__}") from None
        if response.status_code != 200:
            raise ApiError(502, f"the upstream model server at {self.url} answered {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError:
            raise ApiError(502, f"the upstream model server at {self.url} sent a body that is not JSON") from None

    def _field(self, read):
        try:
            value = read()
        except (KeyError, IndexError, TypeError):
            raise ApiError(502, f"the upstream model server at {self.url} sent an answer that is not OpenAI-shaped") from None
        if not isinstance(value, str):
            raise ApiError(502, f"the upstream model server at {self.url} sent a non-text answer")
        return value
