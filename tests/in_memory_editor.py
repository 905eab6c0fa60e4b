"""A test double of the `Editor` interface: edits are kept in a dict, resets and batch sizes counted.

Subclasses say how the edited "model" scores and answers.
"""

from serac.core.editor import Editor, StoredEdit
from serac.core.text_checks import check_edits


class InMemoryEditor(Editor):
    def __init__(self):
        self.edits: dict[str, tuple[str, str]] = {}
        self.edit_calls: list[list[tuple[str, str]]] = []
        self.resets = 0
        self.max_edits_seen = 0
        self.subjects: list[str | None] = []  # the subject each edit carried, in order

    def add_edits(self, edits):
        requests = check_edits(edits)
        self.subjects.extend(request.subject for request in requests)
        edits = [(request.prompt, request.target) for request in requests]
        self.edit_calls.append(edits)
        ids = []
        for edit in edits:
            ids.append(str(len(self.edits)))
            self.edits[ids[-1]] = edit
        self.max_edits_seen = max(self.max_edits_seen, len(self.edits))
        return ids

    def edit_ids(self):
        return list(self.edits)

    def stored_edits(self):
        return [StoredEdit(edit_id, prompt, target) for edit_id, (prompt, target) in self.edits.items()]

    def remove_edit(self, edit_id):
        del self.edits[edit_id]

    def reset(self):
        self.edits.clear()
        self.resets += 1

    def save(self, path):
        raise NotImplementedError

    @classmethod
    def load(cls, path, device=None):
        raise NotImplementedError
