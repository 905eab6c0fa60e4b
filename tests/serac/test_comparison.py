"""`serac-compare` on tiny models: the composed config, the rows, and the files written."""

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from serac.cli import CONFIG_DIR
from serac import comparison
from serac.comparison import METRICS, PLOT_FILE, CompareConfig, editor_builders, run_comparison, table_row
from serac.core.registry import editor_class

RECORDS = 3


def composed(tmp_path, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        config = compose(
            "compare",
            [
                "model=tiny-llama",
                f"max_records={RECORDS}",
                "checkpoints=[1,2]",
                "algs.ft.ft.steps=2",
                f"results_dir={tmp_path / 'results'}",
                "device=cpu",
                *overrides,
            ],
        )
    return OmegaConf.to_container(config, resolve=True)


def rows_of(folder) -> list[tuple[str, str, int]]:
    return [
        (row["editor"], row["protocol"], row["T"]) for row in json.loads((folder / "results.json").read_text())["rows"]
    ]


def test_editors_built_from_their_alg_config_are_compared_in_one_table(tmp_path):
    config = composed(tmp_path, "from_config=[ft,cache]")
    assert set(config["algs"]) == {"ft", "ft_kl", "ft_l", "cache", "rome", "memit"}
    assert set(editor_builders({**config, "from_config": ["rome", "memit"]})) == {"rome", "memit"}

    folder = run_comparison(config)

    expected = [
        (editor, protocol, t)
        for editor in ("ft", "cache")
        for protocol, t in [("single", 1), ("sequential", 1), ("sequential", 2), ("sequential", 3)]
    ]
    assert rows_of(folder) == expected
    results = json.loads((folder / "results.json").read_text())
    assert results["metadata"]["records"] == RECORDS
    assert all(set(row) == {"editor", "protocol", "T", *METRICS} for row in results["rows"])  # zsRE dev has portability
    table = (folder / "results.md").read_text()
    assert "| editor | protocol | T | edit_success | rephrase_success | edit_success_latest |" in table
    assert len([line for line in table.splitlines() if line.startswith(("| ft ", "| cache "))]) == 8
    assert (folder / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The cache answers its edit prompts exactly: every edit succeeds.
    assert all(row["edit_success"] == 1.0 for row in results["rows"] if row["editor"] == "cache")


def test_a_stopped_comparison_keeps_the_editors_it_finished(tmp_path, monkeypatch):
    def broken():
        raise RuntimeError("the second editor fails to build")

    all_builders = comparison.editor_builders
    monkeypatch.setattr(comparison, "editor_builders", lambda config: {**all_builders(config), "broken": broken})
    with pytest.raises(RuntimeError, match="second editor"):
        run_comparison(composed(tmp_path, "from_config=[ft]", "protocols=[single]"))

    folder = tmp_path / "results"
    assert rows_of(folder) == [("ft", "single", 1)]
    assert json.loads((folder / "results.json").read_text())["metadata"]["incomplete"] == "measured so far: ft"


def test_a_calibrated_cache_is_reported_at_three_thresholds(tmp_path):
    cache = editor_class("cache").from_config(
        {"model": {"name": "tiny-llama", "prompt_format": "plain"}, "alg": {"cache": {}}, "device": "cpu"}
    )
    cache.configure(epsilon=2.0, calibrated_epsilon=2.0)
    kept = cache.add_edit("A user's own edit", "kept")
    cache.save(tmp_path / "cache")
    cache.close()
    config = composed(tmp_path, "from_config=[]", f"+editors.cache={tmp_path / 'cache'}", "protocols=[sequential]")

    folder = run_comparison(config)

    # The comparison edited and reset a working copy: the user's folder still holds its edit.
    saved = editor_class("cache").load(tmp_path / "cache")
    assert saved.edit_ids() == [kept]
    saved.close()
    assert not (folder / "editor_working_copies").exists()

    labels = ["cache (ε*/2)", "cache (ε*)", "cache (2ε*)"]
    assert rows_of(folder) == [(label, "sequential", t) for label in labels for t in (1, 2, 3)]
    variants = json.loads((folder / "results.json").read_text())["metadata"]["variants"]
    assert variants == {
        "cache (ε*/2)": {"epsilon": 1.0},
        "cache (ε*)": {"epsilon": 2.0},
        "cache (2ε*)": {"epsilon": 4.0},
    }


def test_single_protocol_rows_hold_one_edit_at_a_time():
    row = {"protocol": "single", "edits_per_step": 1, "edits": 50, "edit_success": 0.5, "edit_token_accuracy": 0.7}
    assert table_row("ft", row) == {"editor": "ft", "protocol": "single", "T": 1, "edit_success": 0.5}


def test_bad_comparisons_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no algs.serac"):
        run_comparison(composed(tmp_path, "from_config=[ft,serac]"))
    with pytest.raises(ValueError, match="must be a saved editor folder"):
        run_comparison(composed(tmp_path, "+editors.mend=null"))
    with pytest.raises(ValueError, match="no editors"):
        run_comparison(composed(tmp_path, "from_config=[]"))
    with pytest.raises(ValueError, match="protocols"):
        CompareConfig(protocols=("sequentail",))


def test_the_curves_draw_the_unedited_level_of_the_metrics_asked_for_only(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(comparison.Figure, "savefig", lambda figure, *args, **kwargs: figures.append(figure))
    rows = [
        {"protocol": "sequential", "editor": "ft", "T": 0, "perplexity": 40.0, "wall": 5.0},
        {"protocol": "sequential", "editor": "ft", "T": 1, "perplexity": 41.0, "wall": 6.0, "edit": 1.0},
        {"protocol": "sequential", "editor": "ft", "T": 10, "perplexity": 80.0, "wall": 9.0, "edit": 0.5},
    ]
    comparison.plot_sequential(rows, tmp_path / "curves.png", ["edit", "perplexity", "wall"], unedited_levels=["perplexity"])
    edit, perplexity, wall = figures[0].axes[:3]
    levels = [(line.get_xdata(), line.get_ydata()) for line in perplexity.get_lines() if line.get_linestyle() == "--"]
    assert len(levels) == 1 and list(levels[0][1]) == [40.0, 40.0]  # the unedited model's perplexity
    assert all(line.get_linestyle() != "--" for axes in (edit, wall) for line in axes.get_lines())
    assert [list(line.get_xdata()) for line in perplexity.get_lines() if line.get_linestyle() != "--"] == [[1, 10]]
    assert "unedited (T = 0)" in [text.get_text() for text in figures[0].legends[0].get_texts()]
