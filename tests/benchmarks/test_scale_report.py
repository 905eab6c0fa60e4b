"""The scale report merges the rows of several runs by size, and refuses a size measured twice
(a figure must not silently pick one of two measurements of the same N)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "scale"))

from report import read_rows  # noqa: E402


def write_rows(path: Path, sizes: list[int]) -> Path:
    path.write_text("".join(json.dumps({"edits": size, "composite": 1 / size}) + "\n" for size in sizes))
    return path


def test_rows_of_a_folder_and_a_file_come_back_ordered_by_size(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_rows(run / "results.jsonl", [1_000_000, 1000])
    rows = read_rows([run, write_rows(tmp_path / "small.jsonl", [10_000])])
    assert [row["edits"] for row in rows] == [1000, 10_000, 1_000_000]


def test_a_size_in_two_sources_is_refused(tmp_path):
    first, second = write_rows(tmp_path / "a.jsonl", [1000]), write_rows(tmp_path / "b.jsonl", [1000, 10_000])
    with pytest.raises(SystemExit, match="1,000 edits are measured twice"):
        read_rows([first, second])


def test_a_missing_source_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no results at"):
        read_rows([tmp_path / "absent.jsonl"])
