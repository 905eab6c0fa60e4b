"""Training the cache: nothing is learned, ε is calibrated (what `serac-train alg=cache` runs)."""

import json
from dataclasses import asdict
from pathlib import Path

from serac.cache.calibration import calibrate_epsilon
from serac.cache.editor import CacheEditor
from serac.core.composed_config import training_records
from serac.core.saving import write_atomically

CALIBRATION_FILE = "calibration.json"


def train_from_config(config: dict, output_dir: Path) -> Path:
    """Calibrate ε on the validation records held out of the training split; saves the editor to
    `output_dir/editor` with `calibration.json` beside it. The training records themselves are not used."""
    editor = CacheEditor.from_config(config)
    try:
        _, val_records = training_records(config)
        calibration = calibrate_epsilon(editor.language_model, val_records, editor.config.batch_size)
        editor.configure(epsilon=calibration.epsilon, calibrated_epsilon=calibration.epsilon)
        saved = Path(output_dir) / "editor"
        editor.save(saved)
    finally:
        editor.close()
    body = json.dumps(asdict(calibration), indent=2, ensure_ascii=False)
    write_atomically(saved / CALIBRATION_FILE, lambda staging: staging.write_text(body))
    return saved
