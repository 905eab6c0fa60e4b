"""Console entry points `serac-train` and `serac-evaluate`, configured with Hydra.

    serac-train alg=serac_quick experiment=zsre
    serac-evaluate alg=serac experiment=zsre editor_path=outputs/.../editor protocol=sequential

The configs live in `configs/` at the top of the project.
"""

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from serac.core.data import load_records
from serac.core.evaluation import EvalConfig, evaluate
from serac.core.registry import editor_class
from serac.core.results import write_results
from serac.core.saving import saved_editor_name

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
log = logging.getLogger(__name__)


def _plain(config: DictConfig) -> dict:
    return OmegaConf.to_container(config, resolve=True)


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def train_main(config: DictConfig) -> None:
    output_dir = Path(config.output_dir)
    saved = editor_class(config.alg.name).train_from_config(_plain(config), output_dir)
    log.info("trained editor saved to %s", saved)
    print(f"trained editor: {saved}")


@hydra.main(config_path=CONFIG_DIR, config_name="evaluate", version_base="1.3")
def evaluate_main(config: DictConfig) -> None:
    plain = _plain(config)
    if config.editor_path:
        editor = editor_class(saved_editor_name(config.editor_path)).load(config.editor_path, device=config.device)
    else:
        editor = editor_class(config.alg.name).from_config(plain)
    records = load_records(config.experiment.dataset, config.experiment.eval_split, config.data_dir)
    eval_config = EvalConfig(
        protocol=config.protocol,
        batch_size=config.batch_size,
        checkpoints=tuple(config.checkpoints),
        max_records=config.max_records,
    )
    rows = evaluate(editor, records, eval_config)
    metadata = {
        "editor": editor.name,
        "editor_path": config.editor_path,
        "dataset": f"{config.experiment.dataset}/{config.experiment.eval_split}",
        "protocol": config.protocol,
    }
    markdown = write_results(rows, config.results_dir, f"{editor.name} on {metadata['dataset']}", metadata)
    print(markdown.read_text())
    print(json.dumps({"results": str(markdown)}))
