"""Editor names -> editor classes and trainers.

Methods register through two entry-point groups (see pyproject.toml): `serac.editors`
names each editor class, `serac.trainers` the `train_from_config(config, output_dir)`
function of each method that is trained. The shared core finds every method this way,
without importing any of them.
"""

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from serac.core.editor import Editor
from serac.core.saving import saved_editor_name, working_copy

EDITOR_GROUP = "serac.editors"
TRAINER_GROUP = "serac.trainers"

Trainer = Callable[[dict, Path], Path]


def editor_names() -> list[str]:
    return sorted(_points(EDITOR_GROUP))


def editor_class(name: str) -> type[Editor]:
    points = _points(EDITOR_GROUP)
    if name not in points:
        known = ", ".join(sorted(points)) or "none (is the package installed? pip install -e .)"
        raise ValueError(f"unknown editor {name!r}; known editors: {known}")
    return points[name].load()


def trainer(name: str) -> Trainer:
    """`train_from_config(config, output_dir) -> folder of the saved editor` of the method `name`."""
    points = _points(TRAINER_GROUP)
    if name not in points:
        editor_class(name)  # an unknown name gets the list of editors
        raise ValueError(f"the {name!r} editor has nothing to train; evaluate it directly (serac-evaluate alg={name})")
    return points[name].load()


def _points(group: str) -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=group)}



def load_working_copy(saved: str | Path, copy: str | Path, device=None) -> Editor:
    """The editor saved at `saved`, loaded from a fresh working copy at `copy` (see
    `saving.working_copy`): evaluating or studying it never changes the user's folder."""
    copy = working_copy(saved, copy)
    return editor_class(saved_editor_name(copy)).load(copy, device=device)
