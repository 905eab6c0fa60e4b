"""A short tour of the Python API on a trained SERAC editor: `python -m serac.demo EDITOR_FOLDER`."""

import sys
import tempfile

from serac import SERAC

EDITS = [
    ("Who is the architect of Toodyay Fire Station?", "Frank Lloyd Wright"),
    ("What is the native language of Danielle Darrieux?", "Japanese"),
]
QUESTIONS = [
    "Who designed Toodyay Fire Station?",
    "Which language did Danielle Darrieux speak as a child?",
    "What is the capital of France?",
]


def main(editor_folder: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        editor = SERAC.load(editor_folder)
        editor.save(scratch)  # work on a copy, so the demo leaves the trained editor's memory empty
        editor.close()
        editor = SERAC.load(scratch)
        print("before any edit:")
        for question in QUESTIONS:
            print(f"  {question!r:60} -> {editor.query(question).text!r}")
        for prompt, target in EDITS:
            print(f"add_edit({prompt!r}, {target!r}) -> id {editor.add_edit(prompt, target)}")
        print("after the edits:")
        for question in QUESTIONS:
            result = editor.query(question)
            route = f"edit {result.edit_id}" if result.routed else "base model"
            print(f"  {question!r:60} -> {result.text!r}  [{route}, scope {result.scope_score:.2f}]")
        editor.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m serac.demo EDITOR_FOLDER")
    main(sys.argv[1])
