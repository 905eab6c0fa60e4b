"""Training SERAC: the scope classifier, then the counterfactual model, then the threshold.

`train_from_config` is what `serac-train alg=serac...` runs (registered as SERAC's trainer).

Both components go through the shared training loop; the threshold is calibrated on the
held-out validation edits; the trained editor is saved with an empty memory.
"""

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from serac.core.composed_config import method_config, training_records
from serac.core.device import pick_device
from serac.core.models import check_model_name, load_language_model
from serac.core.records import EditRecord
from serac.core.train_config import TrainConfig
from serac.core.training import load_trained_weights, train
from serac.serac.calibration import calibrate_threshold
from serac.serac.config import SERACConfig
from serac.serac.counterfactual import CounterfactualModel
from serac.serac.counterfactual_training import CounterfactualTraining
from serac.serac.editor import SERAC
from serac.serac.scope_classifier import ScopeClassifier
from serac.serac.scope_classifier_training import ScopeClassifierTraining
from serac.serac.training_data import (
    counterfactual_examples,
    look_alike_edit_pairs,
    mine_hard_negatives,
    other_dataset_negatives,
    relation_negatives,
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
    # Subject-relation edits (CounterFact): this many queries of each kind per edit about its
    # subject with another relation and about its relation with another subject (0: none).
    relation_negatives_per_edit: int = 0
    # Mixtures of data sets (CounterFact + zsRE): this many queries per edit about its subject in
    # another data set's templates of another relation (0: none).
    other_dataset_negatives_per_edit: int = 0
    # Subject-relation edits: this many pairs per edit whose stored edit is its subject in another
    # relation and whose query is its rephrase (out of scope), each with an in-scope pair (0: none).
    look_alike_edits_per_edit: int = 0
    # Weight of the counterfactual model's preference term on dialogue examples (0: NLL only, as SERAC).
    preference_weight: float = 5.0
    seed: int = 0


def train_from_config(config: dict, output_dir: Path) -> Path:
    """Train SERAC as the composed CLI config says (`alg.serac`, `alg.classifier_training`, ...)."""
    alg = config["alg"]
    setup = SERACTraining(
        config=method_config(SERACConfig, config, "serac"),
        classifier=alg["classifier_training"],
        counterfactual=alg["counterfactual_training"],
        hard_negatives_per_edit=alg["hard_negatives_per_edit"],
        relation_negatives_per_edit=alg["relation_negatives_per_edit"],
        other_dataset_negatives_per_edit=alg["other_dataset_negatives_per_edit"],
        look_alike_edits_per_edit=alg["look_alike_edits_per_edit"],
        preference_weight=alg["preference_weight"],
        seed=config.get("seed", 0),
    )
    train_records, val_records = training_records(config)
    return train_serac(setup, train_records, val_records, output_dir, device=config.get("device"))


def train_serac(setup: SERACTraining, train_records: list[EditRecord], val_records: list[EditRecord], output_dir: Path, device=None) -> Path:
    output_dir = Path(output_dir)
    config = setup.config
    # Everything that can be wrong with the settings fails here, before minutes of training.
    classifier_run = _train_config(setup.classifier, output_dir / "scope_classifier", "cross_accuracy", "max", setup.seed)
    counterfactual_run = _train_config(setup.counterfactual, output_dir / "counterfactual", "loss", "min", setup.seed)
    for name in (config.classifier_backbone, config.counterfactual_model, config.model_name):
        check_model_name(name)
    device = pick_device(device)

    classifier = ScopeClassifier.from_backbone(config.classifier_backbone, config.max_classifier_tokens).to(device)
    train_pairs, val_pairs = (
        scope_pairs(records, mine_hard_negatives(classifier, records, setup.hard_negatives_per_edit), setup.seed, _extra_negatives(setup, records))
        + look_alike_edit_pairs(records, setup.look_alike_edits_per_edit, setup.seed)
        for records in (train_records, val_records)
    )
    log.info("scope classifier: %d training pairs, %d validation pairs", len(train_pairs), len(val_pairs))
    # What both phases depend on besides their own loop settings (those are compared apart);
    # routing settings do not shape training (a run resumes after they change).
    identity = {name: value for name, value in asdict(setup).items() if name not in ("classifier", "counterfactual")}
    identity["config"] = {name: value for name, value in identity["config"].items() if name not in SERACConfig.inference_settings}
    _train_and_keep_best(ScopeClassifierTraining(classifier), train_pairs, val_pairs, classifier_run, identity)

    counterfactual = CounterfactualModel(load_language_model(config.counterfactual_model, device, config.prompt_format))
    _train_and_keep_best(
        CounterfactualTraining(counterfactual, setup.preference_weight), counterfactual_examples(train_records), counterfactual_examples(val_records), counterfactual_run, identity
    )

    base = load_language_model(config.model_name, device, config.prompt_format)
    editor = SERAC(config, base, counterfactual, classifier)
    calibration = calibrate_threshold(editor, val_records)
    editor.configure(threshold=calibration.threshold, embedding_floor=calibration.embedding_floor)
    saved = output_dir / "editor"
    editor.save(saved)
    editor.close()
    (saved / "calibration.json").write_text(json.dumps(asdict(calibration), indent=2))
    return saved


def _extra_negatives(setup: SERACTraining, records: list[EditRecord]) -> list[list[str]] | None:
    """The relation and other-data-set negatives of each record, or None when neither is asked for."""
    if not setup.relation_negatives_per_edit and not setup.other_dataset_negatives_per_edit:
        return None
    within = relation_negatives(records, setup.relation_negatives_per_edit, setup.seed)
    across = other_dataset_negatives(records, setup.other_dataset_negatives_per_edit, setup.seed)
    return [mine + theirs for mine, theirs in zip(within, across)]


def _train_config(fields: dict, output_dir: Path, metric: str, mode: str, seed: int) -> TrainConfig:
    defaults = {"early_stop_metric": metric, "early_stop_mode": mode, "seed": seed}
    return TrainConfig.from_settings(str(output_dir), {**defaults, **fields})


def _train_and_keep_best(algorithm, train_items, val_items, run: TrainConfig, identity: dict) -> None:
    result = train(algorithm, train_items, val_items, run, identity)
    if result.best_dir is not None:
        metadata = load_trained_weights(algorithm, result.best_dir)
        log.info("kept the best weights of %s: %s", run.output_dir, metadata)
    algorithm.eval()
