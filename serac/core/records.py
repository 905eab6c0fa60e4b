"""The one record type every data format is turned into, and the edit an editor is asked to make."""

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class EditRecord:
    """One edit and the inputs used to measure it.

    `prompt` + `target` is the edit. `rephrases` are in-scope inputs (paraphrases of the
    edit, or for dialogue the questions about the topic); `locality_prompts` are out-of-scope
    inputs with `locality_answers` when gold answers exist. Dialogue edits carry
    `target_replies` (replies in the requested trait or sentiment) and `contrast_replies`
    (the other traits / opposite sentiment), which the dialogue metrics compare.
    """

    prompt: str
    target: str
    rephrases: tuple[str, ...] = ()
    locality_prompts: tuple[str, ...] = ()
    locality_answers: tuple[str, ...] = ()
    portability_prompts: tuple[str, ...] = ()
    portability_answers: tuple[str, ...] = ()
    subject: str = ""
    original_answer: str = ""
    target_replies: tuple[str, ...] = ()
    contrast_replies: tuple[str, ...] = ()
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def fact(self) -> tuple[str, str]:
        """The fact this edit rewrites: (subject, original answer); records without a subject are each their own.

        Edits of one fact supersede each other (zsRE edits some facts several times, with different
        targets). Two relations of one subject with the same original answer would share a key.
        """
        return (self.subject, self.original_answer) if self.subject else ("", self.source)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EditRequest:
    """One edit handed to `Editor.add_edits`: make the model answer `prompt` with `target`.

    `subject` names the entity the edit is about, as it occurs in the prompt ("Danielle
    Darrieux" in "The mother tongue of Danielle Darrieux is"). ROME and MEMIT need it to find
    the token whose key they rewrite; every other editor ignores it.
    """

    prompt: str
    target: str
    subject: str | None = None
