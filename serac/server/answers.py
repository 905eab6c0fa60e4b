"""Who answers a query: the editor, through the batcher; with an upstream, the stored edits
answer here and every query they do not cover is forwarded to the upstream base model."""

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from serac.core.editor import Editor, QueryResult
from serac.core.memory_editor import MemoryEditor
from serac.server.batching import QueryBatcher
from serac.server.upstream import Upstream


@dataclass(frozen=True)
class Answer:
    text: str
    routed: bool  # a stored edit answered
    edit_id: str | None
    scope_score: float | None
    answered_by: str  # "edit", "base" (the local base model) or "upstream"

    @classmethod
    def of(cls, result: QueryResult) -> "Answer":
        return cls(result.text, result.routed, result.edit_id, result.scope_score, "edit" if result.routed else "base")


class UpstreamNeedsMemoryEditorError(ValueError):
    """An upstream base model was asked for with an editor that edits weights."""


class Answerer:
    """`model_turn` is held while the model answers a batch: edits that change weights in place
    take it too, so a batch never sees half of an edit."""

    def __init__(
        self,
        editor: Editor,
        model_turn: AbstractContextManager,
        max_batch: int,
        window_s: float,
        upstream: Upstream | None = None,
        on_batch: Callable[[int], None] = lambda size: None,
    ):
        if upstream is not None and not isinstance(editor, MemoryEditor):
            raise UpstreamNeedsMemoryEditorError(
                f"an upstream base model needs an editor whose edits live in a memory (serac, cache); "
                f"the {editor.name!r} editor's edits are in its local weights, so its base model must be local"
            )
        self.upstream = upstream
        answer_batch = editor.answer_from_edits if upstream is not None else editor.query_batch

        def answer_in_turn(prompts: list[str], max_new_tokens: int | None) -> list:
            with model_turn:
                return answer_batch(prompts, max_new_tokens)

        self.batcher = QueryBatcher(answer_in_turn, max_batch, window_s, on_batch)

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        if self.upstream is not None:
            await self.upstream.aclose()

    async def complete(self, prompts: list[str], max_new_tokens: int | None, stop: list[str]) -> list[Answer]:
        results = await self.batcher.answer(prompts, max_new_tokens)
        return list(
            await asyncio.gather(
                *(
                    self._finish(result, lambda prompt=prompt: self.upstream.complete(prompt, max_new_tokens, stop or None), stop)
                    for prompt, result in zip(prompts, results)
                )
            )
        )

    async def chat(self, question: str, messages: list[dict], max_new_tokens: int | None, stop: list[str]) -> Answer:
        """The last user message `question` is what the editor answers; the upstream gets the whole conversation."""
        (result,) = await self.batcher.answer([question], max_new_tokens)
        return await self._finish(result, lambda: self.upstream.chat(messages, max_new_tokens, stop or None), stop)

    async def _finish(self, result: QueryResult | None, ask_upstream: Callable[[], Awaitable[str]], stop: list[str]) -> Answer:
        if result is None:  # no stored edit covers it: the upstream base model answers
            return Answer(await ask_upstream(), False, None, None, "upstream")
        answer = Answer.of(result)
        return Answer(cut_at_stop(answer.text, stop), answer.routed, answer.edit_id, answer.scope_score, answer.answered_by)


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The text up to the first of the stop sequences (OpenAI's `stop`)."""
    cut = min((text.find(sequence) for sequence in stop if sequence and sequence in text), default=len(text))
    return text[:cut]
