import math

from serac.core.forgetting import CollapseThresholds
from serac.study_summary_plot import PANELS, plot_summary, summary_series

TOKEN_KEYS = ("edit_token_accuracy", "rephrase_token_accuracy", "locality_token")
UNEDITED = {"T": 0, "heldout_perplexity": 40.0, "generation_fluency": 5.0, "repetitive_generations": 0.3}


def edited(t, perplexity, fluency, repetitive, tokens=(1.0, 0.5, 0.75)):
    return {"T": t, **dict(zip(TOKEN_KEYS, tokens)), "heldout_perplexity": perplexity,
            "generation_fluency": fluency, "repetitive_generations": repetitive}


def test_each_panel_is_measured_against_the_runs_own_unedited_row():
    measured = {"rome": [UNEDITED, edited(1, 40.0, 5.0, 0.3), edited(100, 100.0, 3.0, 0.8)]}
    series = summary_series(measured, TOKEN_KEYS)
    kept, perplexity, fluency, looping = (series[title]["rome"] for title, _ in PANELS)
    assert kept == [(1, 0.75), (100, 0.75)]
    assert perplexity == [(1, 1.0), (100, 2.5)]
    assert fluency == [(1, 1.0), (100, 0.6)]
    assert [t for t, _ in looping] == [1, 100] and math.isclose(looping[1][1], 0.5)


def test_values_a_row_cannot_give_are_left_out_and_runs_without_an_unedited_row_are_skipped():
    measured = {
        "mend": [UNEDITED, edited(10, math.inf, 1.0, 0.9), {"T": 100, "heldout_perplexity": 80.0}],
        "no_unedited_row": [edited(1, 40.0, 5.0, 0.3), edited(10, 40.0, 5.0, 0.3)],
    }
    series = summary_series(measured, TOKEN_KEYS)
    assert series[PANELS[1][0]] == {"mend": [(100, 2.0)]}  # the infinite perplexity is no point
    assert series[PANELS[0][0]] == {"mend": [(10, 0.75)]}  # T = 100 has no token scores
    assert all("no_unedited_row" not in lines for lines in series.values())


def test_the_figure_is_written_only_when_there_is_something_to_draw(tmp_path):
    thresholds = CollapseThresholds()
    file = tmp_path / "summary.png"
    assert plot_summary({"ft": [UNEDITED]}, file, thresholds, TOKEN_KEYS, {"ft": None}) is None and not file.exists()
    measured = {"ft": [UNEDITED, edited(10, 100.0, 3.0, 0.8)]}
    assert plot_summary(measured, file, thresholds, TOKEN_KEYS, {"ft": 10}) == file
    assert file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
