"""Concurrent queries, gathered into batches for the model.

A request's prompts join a queue; one collector takes the first waiting prompt, waits up to
the window for more (unless a full batch is already waiting), and hands at most `max_batch`
prompts to the model in one call. Prompts asking for different answer lengths go in separate
calls. The model runs on one worker thread, so batches never overlap and the event loop
stays free to accept requests meanwhile.
"""

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

AnswerBatch = Callable[[list[str], int | None], Sequence]  # (prompts, max_new_tokens) -> one result per prompt


@dataclass
class _Waiting:
    prompt: str
    max_new_tokens: int | None
    result: asyncio.Future


class QueryBatcher:
    def __init__(
        self,
        answer_batch: AnswerBatch,
        max_batch: int,
        window_s: float,
        on_batch: Callable[[int], None] = lambda size: None,
    ):
        self._answer_batch = answer_batch
        self._max_batch = max_batch
        self._window_s = window_s
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._collector: asyncio.Task | None = None
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serac-model")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._collector = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            self._queue.get_nowait().result.cancel()
        self._model_thread.shutdown(wait=True)

    async def answer(self, prompts: list[str], max_new_tokens: int | None) -> list:
        """One result per prompt, computed in batches with other requests' prompts."""
        loop = asyncio.get_running_loop()
        waiting = [_Waiting(prompt, max_new_tokens, loop.create_future()) for prompt in prompts]
        for item in waiting:
            self._queue.put_nowait(item)
        return list(await asyncio.gather(*(item.result for item in waiting)))

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            if self._window_s and self._queue.qsize() < self._max_batch - 1:
                await asyncio.sleep(self._window_s)
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [item for item in batch if not item.result.done()]  # a client that went away cancels its future
            for length in dict.fromkeys(item.max_new_tokens for item in live):
                group = [item for item in live if item.max_new_tokens == length]
                self._on_batch(len(group))
                try:
                    results = await loop.run_in_executor(self._model_thread, self._answer_batch, [item.prompt for item in group], length)
                except Exception as error:  # noqa: BLE001 - handed to each waiting request
                    for item in group:
                        if not item.result.done():
                            item.result.set_exception(error)
                    continue
                for item, result in zip(group, results, strict=True):
                    if not item.result.done():
                        item.result.set_result(result)
