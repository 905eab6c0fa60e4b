"""The scale benchmark's results (RUN/results.jsonl) as a Markdown table and a PNG of quality
and latency against the number of edits.

    .venv/bin/python benchmarks/scale/report.py RUN [--png RUN/scale.png]
    .venv/bin/python benchmarks/scale/report.py A.jsonl B.jsonl --png scale.png   # rows of several runs

Each source is a run folder (its results.jsonl) or a results file; one size may come from one
source only, so a figure never mixes two measurements of the same N.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the file backend

COLUMNS = (
    ("edits", "edits", "{:,}"),
    ("edit_success", "edit success", "{:.3f}"),
    ("paraphrase_success", "paraphrase", "{:.3f}"),
    ("locality", "locality", "{:.3f}"),
    ("composite", "mean of the three", "{:.3f}"),
    ("base_ms", "base alone (ms)", "{:.0f}"),
    ("query_out_of_scope_ms", "query out of scope (ms)", "{:.0f}"),
    ("ratio_out_of_scope", "ratio to base", "{:.3f}"),
    ("query_in_scope_ms", "query in scope (ms)", "{:.0f}"),
    ("routing_ms", "routing (ms)", "{:.1f}"),
    ("add_edits_per_s", "add_edits /s", "{:.0f}"),
    ("load_s", "load (s)", "{:.1f}"),
    ("rss_mb", "RSS (MB)", "{:.0f}"),
    ("disk_bytes_per_edit", "disk / edit (B)", "{:.0f}"),
)


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " | search | recall@1 |", "|" + "---|" * (len(COLUMNS) + 2)]
    for row in rows:
        cells = ["-" if row.get(key) is None else style.format(row[key]) for key, _, style in COLUMNS]
        approximation = row["memory"]["approximation"]
        recall = f"{approximation['recall_at_1']:.3f} (nprobe {approximation['nprobe']}/{approximation['nlist']})" if approximation else "-"
        lines.append("| " + " | ".join(cells) + f" | {row['memory']['search']} | {recall} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    edits = [row["edits"] for row in rows]
    figure, (quality, latency) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("edit_success", "edit success"), ("paraphrase_success", "paraphrase"), ("locality", "locality"), ("composite", "mean")):
        quality.plot(edits, [row[key] for row in rows], marker="o", label=label)
    quality.set(xscale="log", xlabel="edits in memory", ylabel="score", ylim=(0, 1.02), title="quality on the probes")
    quality.legend()
    for key, label in (("base_ms", "base model alone"), ("query_out_of_scope_ms", "SERAC, out of scope"), ("query_in_scope_ms", "SERAC, in scope")):
        latency.plot(edits, [row[key] for row in rows], marker="o", label=label)
    latency.set(xscale="log", xlabel="edits in memory", ylabel="ms per query (median)", ylim=(0, None), title="query latency")
    latency.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def read_rows(sources: list[Path]) -> list[dict]:
    """The rows of every source, by size; a size measured in two sources is an error."""
    rows = {}
    for source in sources:
        path = source / "results.jsonl" if source.is_dir() else source
        if not path.is_file():
            raise SystemExit(f"no results at {path}")
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["edits"] in rows:
                raise SystemExit(f"{row['edits']:,} edits are measured twice (again in {path}): give each size once")
            rows[row["edits"]] = row
    return [rows[size] for size in sorted(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", type=Path, nargs="+", help="run folders or results .jsonl files")
    parser.add_argument("--png", type=Path, help="default: scale.png in the first source's folder")
    arguments = parser.parse_args()
    rows = read_rows(arguments.sources)
    print(table(rows))
    first = arguments.sources[0]
    plot(rows, arguments.png or (first if first.is_dir() else first.parent) / "scale.png")


if __name__ == "__main__":
    main()
