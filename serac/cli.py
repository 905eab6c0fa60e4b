"""Console entry points `serac-train`, `serac-evaluate` and `serac-evaluate-dialogue`, configured with Hydra.

    serac-train alg=serac_quick experiment=zsre
    serac-evaluate alg=serac experiment=zsre editor_path=outputs/.../editor protocol=sequential
    serac-evaluate-dialogue experiment=personality editor_path=outputs/.../editor

The configs live in `configs/` at the top of the project.
"""

import dataclasses
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from serac.core.data import load_records
from serac.core.data_errors import DataFormatError
from serac.core.dialogue_evaluation import DialogueEvalConfig, evaluate_dialogue
from serac.core.editor import Editor, configure_editor
from serac.core.evaluation import EvalConfig, evaluate
from serac.core.models import ModelNotFoundError
from serac.core.registry import editor_class, load_working_copy, trainer
from serac.core.results import write_results
from serac.core.saving import FolderInUseError, NotASavedEditorError
from serac.core.setting_checks import SettingsError
from serac.core.training import CheckpointError

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
WORKING_COPY = "editor_working_copy"  # in the results folder, while a saved editor is evaluated
log = logging.getLogger(__name__)


def _plain(config: DictConfig) -> dict:
    return OmegaConf.to_container(config, resolve=True)


@contextmanager
def user_errors(command: str) -> Iterator[None]:
    """Mistakes in what the user gave (settings, a saved folder, data, a busy folder) end `command`
    with our message, not a stack trace."""
    try:
        yield
    except (SettingsError, NotASavedEditorError, ModelNotFoundError, DataFormatError, FolderInUseError, CheckpointError) as error:
        raise SystemExit(f"{command}: {error}") from None


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def train_main(config: DictConfig) -> None:
    output_dir = Path(config.output_dir)
    with user_errors("serac-train"):
        saved = trainer(config.alg.name)(_plain(config), output_dir)
    log.info("trained editor saved to %s", saved)
    print(f"trained editor: {saved}")
    if torch.distributed.is_initialized():  # under `accelerate launch`: a clean exit for every process
        torch.distributed.destroy_process_group()


@contextmanager
def _editor(config: DictConfig) -> Iterator[Editor]:
    """The saved editor at `editor_path` (loaded from a working copy in the results folder, so
    the evaluation's edits and resets never touch the user's folder), else the `alg` editor
    built from its config, with the `configure` settings; closed and its copy removed afterwards."""
    copy = Path(config.results_dir) / WORKING_COPY
    if config.editor_path:
        editor = load_working_copy(config.editor_path, copy, device=config.device)
    else:
        editor = editor_class(config.alg.name).from_config(_plain(config))
    try:
        settings = config.get("configure")
        configure_editor(editor, _plain(settings) if settings else None)
        yield editor
    finally:
        editor.close()
        shutil.rmtree(copy, ignore_errors=True)


@hydra.main(config_path=CONFIG_DIR, config_name="evaluate", version_base="1.3")
def evaluate_main(config: DictConfig) -> None:
    with user_errors("serac-evaluate"):
        eval_config = EvalConfig(  # the settings are checked before the editor's models are loaded
            protocol=config.protocol,
            batch_size=config.batch_size,
            checkpoints=tuple(config.checkpoints),
            max_records=config.max_records,
            answer_locality=config.answer_locality,
        )
        with _editor(config) as editor:
            records = load_records(config.experiment.dataset, config.experiment.eval_split, config.data_dir)
            _report(config, editor, evaluate(editor, records, eval_config))


@hydra.main(config_path=CONFIG_DIR, config_name="evaluate_dialogue", version_base="1.3")
def evaluate_dialogue_main(config: DictConfig) -> None:
    plain = _plain(config)
    with user_errors("serac-evaluate-dialogue"):
        # The config's top-level keys named like DialogueEvalConfig's fields set them.
        eval_config = DialogueEvalConfig(**{f.name: plain[f.name] for f in dataclasses.fields(DialogueEvalConfig)})
        with _editor(config) as editor:
            records = load_records(config.experiment.dataset, config.experiment.eval_split, config.data_dir)
            results = evaluate_dialogue(editor, records, eval_config)
            sections = {"Sample generations": results.generations} if results.generations else None
            _report(config, editor, results.rows, {"edit_with": config.edit_with}, sections)


def _report(config: DictConfig, editor: Editor, rows: list[dict], extra_metadata: dict | None = None, sections=None):
    metadata = {
        "editor": editor.name,
        "editor_path": config.editor_path,
        "dataset": f"{config.experiment.dataset}/{config.experiment.eval_split}",
        "protocol": config.protocol,
        **(extra_metadata or {}),
    }
    markdown = write_results(rows, config.results_dir, f"{editor.name} on {metadata['dataset']}", metadata, sections)
    print(markdown.read_text())
    print(json.dumps({"results": str(markdown)}))
