"""What the composed CLI config (a plain dict: `model`, `alg`, `experiment`, `data_dir`, `device`,
`seed`) says: a method's config dataclass, and the records an experiment trains and validates on."""

import dataclasses
import random

from serac.core.data import load_records
from serac.core.records import EditRecord
from serac.core.training_data import normalise, record_texts, repeated, with_extra_locality, without_held_out


def split_train_validation(records: list[EditRecord], fraction: float, seed: int) -> tuple[list[EditRecord], list[EditRecord]]:
    """Hold out a fraction of the training records for validation (and SERAC's threshold calibration)."""
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    count = max(1, int(len(shuffled) * fraction))
    return shuffled[count:], shuffled[:count]


def with_dataset(records: list[EditRecord], source: dict) -> list[EditRecord]:
    """The records tagged with the data set they come from (`extra["dataset"]`), so that a mixture
    can be told apart again (SERAC draws relation negatives within each data set), and with the
    source's `relation_negatives: false` when its prompts are not relation templates (zsRE's
    questions phrase one relation many ways; see `serac.serac.training_data.relation_negatives`)."""
    tags = {"dataset": source["dataset"]}
    if source.get("relation_negatives", True) is False:
        tags["relation_negatives"] = False
    return [dataclasses.replace(record, extra={**record.extra, **tags}) for record in records]


def training_records(config: dict) -> tuple[list[EditRecord], list[EditRecord]]:
    """(train, validation) records: the experiment's training split less a held-out fraction, plus the
    extra training data and locality inputs it names, without anything from its held-out files
    (the keys are described in `serac.core.training_data`)."""
    experiment, data_dir, seed = config["experiment"], config.get("data_dir"), config.get("seed", 0)
    held_out = set()
    for source in experiment.get("held_out") or []:
        held_out |= {text for record in load_records(source["dataset"], source["split"], data_dir) for text in record_texts(record)}
    records = load_records(experiment["dataset"], experiment["train_split"], data_dir, config["alg"].get("train_limit"))
    records = without_held_out(records, held_out, f"{experiment['dataset']}/{experiment['train_split']}")
    train_records, val_records = split_train_validation(with_dataset(records, experiment), experiment["validation_fraction"], seed)
    train_records = repeated(train_records, experiment.get("train_repeat", 1), "train")
    for extra in experiment.get("extra_train") or []:
        name = f"{extra['dataset']}/{extra['split']}"
        extra_records = without_held_out(load_records(extra["dataset"], extra["split"], data_dir, extra.get("limit")), held_out, name)
        extra_records = with_dataset(extra_records, extra)
        fraction = extra.get("validation_fraction", 0.0)
        extra_train, extra_val = split_train_validation(extra_records, fraction, seed) if fraction else (extra_records, [])
        train_records += repeated(extra_train, extra.get("repeat", 1), name)
        val_records += extra_val
    locality = experiment.get("extra_locality")
    if locality:
        pairs = [
            (record.prompt, record.target)
            for record in load_records(locality["dataset"], locality["split"], data_dir)
            if normalise(record.prompt) not in held_out
        ]
        train_records = with_extra_locality(train_records, pairs, locality.get("per_record", 1), seed)
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
