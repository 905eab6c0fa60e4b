"""What the SERAC analysis scripts beside the study share: their command-line arguments, the
study's records (the same the study edits, in its order) and an editor copy to fill with them."""

import argparse
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from serac.cli import CONFIG_DIR
from serac.core.editor import Editor
from serac.core.forgetting import ForgettingProbe
from serac.core.records import EditRecord
from serac.core.registry import load_working_copy
from serac.lifelong_study import StudySettings, study_records


def argument_parser(description: str, default_dataset: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("editor", type=Path, help="a saved SERAC editor folder")
    parser.add_argument("--dataset", default=default_dataset, choices=["counterfact", "zsre"])
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--subject-scope", action="store_true", help="route with SERACConfig.subject_scope on")
    return parser


def study_probe_and_records(dataset: str, edits: int, data_dir: str | None) -> tuple[ForgettingProbe, list[EditRecord]]:
    """The study's forgetting probe and its first `edits` records of `dataset`, as `serac-study` picks them."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        config = OmegaConf.to_container(compose("study", [f"max_edits={edits}", "results_dir=unused"]), resolve=True)
    settings = StudySettings.from_config({**config, "data_dir": data_dir}, [])
    probe = ForgettingProbe.build(settings.forgetting)
    return probe, study_records(dataset, probe, settings, data_dir)[0]


@contextlib.contextmanager
def emptied_copy(folder: Path, subject_scope: bool) -> Iterator[Editor]:
    """The saved editor loaded from a scratch copy with its memory emptied (the folder given is left
    as it is), closed and deleted afterwards."""
    with tempfile.TemporaryDirectory() as scratch:
        editor = load_working_copy(folder, Path(scratch) / "editor")
        try:
            editor.reset()
            if subject_scope:
                editor.configure(subject_scope=True)
            yield editor
        finally:
            editor.close()
