"""Results tables: one JSON file for machines and one Markdown table for people."""

import json
import math
from pathlib import Path


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |")
    return "\n".join(lines)


def write_results(
    rows: list[dict],
    folder: str | Path,
    title: str,
    metadata: dict | None = None,
    sections: dict[str, list[dict]] | None = None,
) -> Path:
    """Write `results.json` and `results.md` into `folder`; returns the Markdown path.

    `sections` are further tables (e.g. sample generations), each under its name as a heading.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    body = {"title": title, "metadata": metadata or {}, "rows": rows, **({"sections": sections} if sections else {})}
    (folder / "results.json").write_text(json.dumps(body, indent=2))
    header = f"# {title}\n\n" + "".join(f"- {key}: {value}\n" for key, value in (metadata or {}).items())
    extra = "".join(f"\n## {name}\n\n{markdown_table(table)}\n" for name, table in (sections or {}).items())
    markdown = folder / "results.md"
    markdown.write_text(header + "\n" + markdown_table(rows) + "\n" + extra)
    return markdown


def _cell(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    # Free text (generated answers) must not break the table.
    return str(value).replace("|", "\\|").replace("\n", "<br>")
