"""Where the edit's subject ends in the token sequence: the position ROME and MEMIT read and rewrite.

The subject is found as text in the prompt (its last occurrence), then mapped to tokens through
the tokenizer's character offsets, so any tokenizer (byte-level BPE with leading spaces,
SentencePiece) gives the token that holds the subject's last character. A subject absent from
the prompt is an error naming the edit, never a guess.
"""

from serac.core.language_model import LanguageModel


class SubjectNotFoundError(ValueError):
    """The subject does not occur in the prompt (or no token covers it)."""


def check_subject(prompt: str, subject: str | None, what: str) -> str:
    """The subject, or a clear error naming the edit (`what`, e.g. "edit 3 ('The mother tongue of ...')")."""
    if subject is None or not subject.strip():
        raise SubjectNotFoundError(f"{what} has no subject; this method needs the edited subject as it occurs in the prompt")
    if subject not in prompt:
        raise SubjectNotFoundError(f"{what}: the subject {subject!r} does not occur in the prompt {prompt!r}")
    return subject


def last_subject_token(language_model: LanguageModel, prompt: str, subject: str) -> int:
    """Index, in the prompt's token ids as `language_model.batch` builds them, of the subject's last token."""
    check_subject(prompt, subject, f"prompt {prompt!r}")
    text, ids, offsets = language_model.encode_prompt(prompt)
    prompt_start = text.rfind(prompt)  # the prompt inside a chat template's wrapping
    if prompt_start < 0:
        raise SubjectNotFoundError(f"the formatted prompt does not contain the prompt {prompt!r}")
    subject_start = prompt_start + prompt.rfind(subject)
    subject_end = subject_start + len(subject)
    covering = [
        index for index, (start, end) in enumerate(offsets) if end > start and start < subject_end and end > subject_start
    ]
    if not covering:
        raise SubjectNotFoundError(f"no token of {prompt!r} covers the subject {subject!r}")
    return covering[-1]
