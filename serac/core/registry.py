"""Editor names -> classes.

Methods register through the `serac.editors` entry-point group (see pyproject.toml), so
the shared core finds MEND and the baselines without importing them.
"""

from importlib.metadata import entry_points

from serac.core.editor import Editor

ENTRY_POINT_GROUP = "serac.editors"


def editor_names() -> list[str]:
    return sorted(point.name for point in entry_points(group=ENTRY_POINT_GROUP))


def editor_class(name: str) -> type[Editor]:
    points = {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in points:
        known = ", ".join(sorted(points)) or "none (is the package installed? pip install -e .)"
        raise ValueError(f"unknown editor {name!r}; known editors: {known}")
    return points[name].load()
