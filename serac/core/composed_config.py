"""What the composed CLI config (a plain dict: `model`, `alg`, `experiment`, `data_dir`, `device`,
`seed`) says: a method's config dataclass, and the records an experiment trains and validates on."""

import dataclasses
import random

from serac.core.data import load_records
from serac.core.records import EditRecord


def split_train_validation(records: list[EditRecord], fraction: float, seed: int) -> tuple[list[EditRecord], list[EditRecord]]:
    """Hold out a fraction of the training records for validation (and SERAC's threshold calibration)."""
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    count = max(1, int(len(shuffled) * fraction))
    return shuffled[count:], shuffled[:count]


def training_records(config: dict) -> tuple[list[EditRecord], list[EditRecord]]:
    """(train, validation) records: the experiment's training split less a held-out fraction, plus extra training data."""
    experiment, data_dir = config["experiment"], config.get("data_dir")
    records = load_records(experiment["dataset"], experiment["train_split"], data_dir, config["alg"].get("train_limit"))
    train_records, val_records = split_train_validation(records, experiment["validation_fraction"], config.get("seed", 0))
    for extra in experiment.get("extra_train", []):
        train_records += load_records(extra["dataset"], extra["split"], data_dir, extra.get("limit"))
    return train_records, val_records


def method_config(config_class: type, config: dict, section: str):
    """`config_class` from the composed config: its settings from `alg.<section>`, the base model's
    name and prompt format from `model` (every method config has `model_name` and `prompt_format`)."""
    settings = dict(config["alg"].get(section) or {})
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)} in alg.{section}; {config_class.__name__} has {sorted(known)}")
    settings.update(model_name=config["model"]["name"], prompt_format=config["model"].get("prompt_format", "auto"))
    return config_class(**settings)
