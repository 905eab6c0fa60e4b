"""Checks of what users hand to editors and to the edit memory: clear errors instead of deep ones."""

from collections.abc import Sequence

from index.validation import MAX_TEXT_CHARS, check_text
from serac.core.records import EditRecord, EditRequest
from serac.core.setting_checks import MAX_NEW_TOKENS, check_int

__all__ = ["MAX_TEXT_CHARS", "answer_length", "check_edits", "check_pairs", "check_text", "check_texts"]


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


def check_edits(edits: Sequence) -> list[EditRequest]:
    """Edits as `EditRequest`s; each may be given as one, as an `EditRecord`, or as a
    (prompt, target) pair or (prompt, target, subject) triple. A clear error names a bad one."""
    if isinstance(edits, (str, bytes)) or not isinstance(edits, Sequence):
        raise TypeError("edits must be a list of (prompt, target) pairs, (prompt, target, subject) triples or EditRequests")
    return [_check_edit(edit, index) for index, edit in enumerate(edits)]


def _check_edit(edit, index: int) -> EditRequest:
    if isinstance(edit, (EditRequest, EditRecord)):
        prompt, target, subject = edit.prompt, edit.target, edit.subject or None
    elif isinstance(edit, (tuple, list)) and len(edit) in (2, 3):
        prompt, target, subject = (*edit, None)[:3]
    else:
        raise TypeError(f"edit {index} must be a (prompt, target) pair, a (prompt, target, subject) triple or an EditRequest, got {edit!r}")
    prompt, target = check_text(prompt, f"edit {index} prompt"), check_text(target, f"edit {index} target")
    if subject is not None:
        subject = check_text(subject, f"edit {index} subject")
    return EditRequest(prompt, target, subject)


def answer_length(max_new_tokens, default: int) -> int:
    """`query`'s answer length: `default` (the editor's configured length) for None, else a checked positive int."""
    if max_new_tokens is None:
        return default
    return check_int(max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS)
