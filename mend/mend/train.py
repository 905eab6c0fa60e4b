"""Training MEND's editor networks with the shared loop (what `serac-train alg=mend...` runs)."""

from pathlib import Path

from mend.mend.editor import MENDEditor
from mend.mend.editor_network_training import MENDTraining
from serac.core.composed_config import training_records
from serac.core.train_config import TrainConfig
from serac.core.training import load_trained_weights, train


def train_from_config(config: dict, output_dir: Path) -> Path:
    """Train the editor networks (`alg.training` holds the TrainConfig fields); keeps the best
    validation weights and saves the editor to `output_dir/editor`."""
    output_dir = Path(output_dir)
    editor = MENDEditor.from_config(config)
    run = TrainConfig.from_settings(str(output_dir / "training"), config["alg"].get("training", {}))
    training = MENDTraining(editor.language_model, editor.config, run.lr, editor.transform)
    train_records, val_records = training_records(config)
    # What a resume must match besides the loop's own settings (compared apart).
    identity = {name: config.get(name) for name in ("model", "experiment", "seed")}
    identity["alg"] = {name: value for name, value in config["alg"].items() if name != "training"}
    result = train(training, train_records, val_records, run, identity)
    if result.best_dir is not None:
        load_trained_weights(training, result.best_dir)
    editor.transform.eval()
    saved = output_dir / "editor"
    editor.save(saved)
    return saved
