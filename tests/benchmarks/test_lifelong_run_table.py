"""run_table: the lifelong README's per-run tables from a run folder's rows."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "lifelong"))

from run_table import run_table  # noqa: E402

UNEDITED = {"T": 0, "heldout_perplexity": 39.829, "unedited_true_over_false": 0.62, "generation_fluency": 4.8834,
            "repetitive_generations": 0.3, "wall_seconds": 100.0}
EDITED = {"T": 1000, "edit_token_accuracy": 0.9, "rephrase_token_accuracy": 0.6, "locality_token": 0.3,
          "efficacy_score": 0.95, "paraphrase_score": 0.8, "neighborhood_score": 0.5, "edit_success": 0.7, "drawdown": 0.2,
          "edit_success_latest": 0.75, "superseded": 0.1, "heldout_perplexity": 2956694.9, "unedited_true_over_false": 0.04,
          "generation_fluency": 2.1, "repetitive_generations": 0.0, "seconds_per_edit": 0.4581, "wall_seconds": 900.0}


def run_folder(tmp_path, name: str, rows: list[dict]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_a_counterfact_run_shows_the_token_triple_its_mean_the_probability_scores_and_forgetting(tmp_path):
    lines = run_table(run_folder(tmp_path, "rome__counterfact", [UNEDITED, EDITED])).splitlines()
    assert lines[0].startswith("| T | reliability (token) | generalization (token) | locality (token) | mean of the three | efficacy |")
    assert lines[2] == "| 0 | - | - | - | - | - | - | - | - | - | 39.83 | 0.62 | 4.883 | 0.30 | - |"
    assert lines[3] == "| 1,000 | 0.900 | 0.600 | 0.300 | 0.600 | 0.950 | 0.800 | 0.500 | 0.700 | 0.200 | 2.96e+06 | 0.04 | 2.100 | 0.00 | 0.458 |"
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_a_run_that_recorded_cpu_time_shows_it_in_a_last_column(tmp_path):
    lines = run_table(run_folder(tmp_path, "rome__counterfact", [UNEDITED, {**EDITED, "cpu_seconds_per_edit": 21.456}])).splitlines()
    assert lines[0].endswith("| repetitive | s/edit | CPU s/edit |")
    assert lines[2].endswith("| 0.30 | - | - |") and lines[3].endswith("| 0.00 | 0.458 | 21.46 |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_a_zsre_run_shows_edit_success_against_the_latest_target_instead(tmp_path):
    lines = run_table(run_folder(tmp_path, "mend__zsre", [UNEDITED, EDITED])).splitlines()
    assert "| against the latest target | superseded |" in lines[0] and "neighbourhood" not in lines[0]
    assert lines[3].startswith("| 1,000 | 0.900 | 0.600 | 0.300 | 0.600 | 0.700 | 0.750 | 0.100 | 0.200 | 0.950 |")


def test_a_folder_that_is_no_study_run_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="not a study run folder"):
        run_table(run_folder(tmp_path, "results", [UNEDITED]))
    with pytest.raises(SystemExit, match="no rows"):
        run_table(run_folder(tmp_path, "ft__zsre", []))
