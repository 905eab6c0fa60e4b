"""Checks of what users hand to editors and to the edit memory: clear errors instead of deep ones."""

from collections.abc import Sequence

MAX_TEXT_CHARS = 4000


def check_text(value, what: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """The user's text if it is usable, else a clear error naming what was wrong."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}: {value!r}")
    if not value.strip():
        raise ValueError(f"{what} must not be empty or whitespace only")
    if len(value) > max_chars:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {max_chars}")
    return value


def check_texts(texts: Sequence[str], what: str) -> list[str]:
    """A list of usable texts (prompts or targets), else a clear error naming the bad one."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"{what}s must be a list of strings, got {type(texts).__name__}")
    return [check_text(text, f"{what} {index}") for index, text in enumerate(texts)]


def check_pairs(prompts: Sequence[str], targets: Sequence[str]) -> tuple[list[str], list[str]]:
    """Usable prompts and targets of equal number, else a clear error."""
    prompts, targets = check_texts(prompts, "prompt"), check_texts(targets, "target")
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    return prompts, targets


def check_edits(edits: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(edits, (str, bytes)) or not isinstance(edits, Sequence):
        raise TypeError("edits must be a list of (prompt, target) pairs")
    checked = []
    for index, edit in enumerate(edits):
        if not isinstance(edit, (tuple, list)) or len(edit) != 2:
            raise TypeError(f"edit {index} must be a (prompt, target) pair, got {edit!r}")
        checked.append((check_text(edit[0], f"edit {index} prompt"), check_text(edit[1], f"edit {index} target")))
    return checked


def answer_length(max_new_tokens, default: int) -> int:
    """`query`'s answer length: `default` (the editor's configured length) for None, else a checked positive int."""
    if max_new_tokens is None:
        return default
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    return max_new_tokens
