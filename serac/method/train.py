"""Training SERAC: the scope classifier, then the counterfactual model, then the threshold.

Both components go through the shared training loop; the threshold is calibrated on the
held-out validation edits; the trained editor is saved with an empty memory.
"""

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from serac.core.device import pick_device
from serac.core.records import EditRecord
from serac.core.train_config import TrainConfig
from serac.core.training import load_trained_weights, train
from serac.method.calibration import calibrate_threshold
from serac.method.config import SERACConfig
from serac.method.counterfactual import CounterfactualModel
from serac.method.counterfactual_training import CounterfactualTraining
from serac.method.editor import SERAC, language_model_for
from serac.method.scope_classifier import ScopeClassifier
from serac.method.scope_training import ScopeClassifierTraining
from serac.method.training_data import (
    counterfactual_examples,
    mine_hard_negatives,
    scope_pairs,
)

log = logging.getLogger(__name__)


@dataclass
class SERACTraining:
    """What `train_serac` needs besides the records."""

    config: SERACConfig
    classifier: dict = field(default_factory=dict)  # TrainConfig fields for the scope classifier
    counterfactual: dict = field(default_factory=dict)  # TrainConfig fields for the counterfactual model
    hard_negatives_per_edit: int = 2
    # Weight of the counterfactual model's preference term on dialogue examples (0: NLL only, as SERAC).
    preference_weight: float = 5.0
    seed: int = 0


def train_serac(setup: SERACTraining, train_records: list[EditRecord], val_records: list[EditRecord], output_dir: Path, device=None) -> Path:
    output_dir = Path(output_dir)
    device = pick_device(device)
    config = setup.config

    classifier = ScopeClassifier(config.classifier_backbone, config.max_classifier_tokens).to(device)
    train_pairs = scope_pairs(train_records, mine_hard_negatives(classifier, train_records, setup.hard_negatives_per_edit), setup.seed)
    val_pairs = scope_pairs(val_records, mine_hard_negatives(classifier, val_records, setup.hard_negatives_per_edit), setup.seed)
    log.info("scope classifier: %d training pairs, %d validation pairs", len(train_pairs), len(val_pairs))
    classifier_run = _train_config(setup.classifier, output_dir / "scope_classifier", "cross_accuracy", "max", setup.seed)
    _train_and_keep_best(ScopeClassifierTraining(classifier), train_pairs, val_pairs, classifier_run)

    counterfactual = CounterfactualModel(language_model_for(config.counterfactual_model, config, device))
    counterfactual_run = _train_config(setup.counterfactual, output_dir / "counterfactual", "loss", "min", setup.seed)
    _train_and_keep_best(
        CounterfactualTraining(counterfactual, setup.preference_weight), counterfactual_examples(train_records), counterfactual_examples(val_records), counterfactual_run
    )

    base = language_model_for(config.base_model, config, device)
    editor = SERAC(config, base, counterfactual, classifier)
    calibration = calibrate_threshold(editor, val_records)
    editor.configure(threshold=calibration.threshold)
    saved = output_dir / "editor"
    editor.save(saved)
    editor.close()
    (saved / "calibration.json").write_text(json.dumps(asdict(calibration), indent=2))
    return saved


def _train_config(fields: dict, output_dir: Path, metric: str, mode: str, seed: int) -> TrainConfig:
    defaults = {"early_stop_metric": metric, "early_stop_mode": mode, "seed": seed}
    return TrainConfig(output_dir=str(output_dir), **{**defaults, **fields})


def _train_and_keep_best(algorithm, train_items, val_items, run: TrainConfig) -> None:
    result = train(algorithm, train_items, val_items, run)
    if result.best_dir is not None:
        metadata = load_trained_weights(algorithm, result.best_dir)
        log.info("kept the best weights of %s: %s", run.output_dir, metadata)
    algorithm.eval()
