"""The state of a weight editor (FT, ROME, MEMIT): one delta per edited weight, written as `unedited + delta`.

Keeping the deltas, not the edited weights, makes `reset` bit-exact (zero deltas write the
unedited copy itself) and lets a saved editor reload bit for bit. On disk: `edits.json` (the
edits, for `remove_edit`'s replay) and `weight_deltas.safetensors`, beside the `editor.json` of
`serac.core.saving`.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from serac.core.saving import NotASavedEditorError, write_atomically

EDITS_FILE = "edits.json"
DELTAS_FILE = "weight_deltas.safetensors"


@torch.no_grad()
def write_weights(weights: dict[str, torch.Tensor], unedited: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor]) -> None:
    """Set each weight to `unedited + delta` in place."""
    for name, weight in weights.items():
        # Zero deltas write `unedited` itself: adding 0.0 would turn a -0.0 weight into +0.0.
        weight.copy_(unedited[name] + deltas[name] if deltas[name].any() else unedited[name])


def save_edits_and_deltas(folder: Path, edits: list[dict], deltas: dict[str, torch.Tensor]) -> None:
    write_atomically(folder / EDITS_FILE, lambda staging: staging.write_text(json.dumps(edits, indent=2)))
    tensors = {name: delta.contiguous().cpu() for name, delta in deltas.items()}
    write_atomically(folder / DELTAS_FILE, lambda staging: save_file(tensors, str(staging)))


def check_saved_files(path: str | Path, editor_name: str) -> None:
    for file in (EDITS_FILE, DELTAS_FILE):
        if not (Path(path) / file).is_file():
            raise NotASavedEditorError(f"{path} is not a complete saved {editor_name} editor: {file} is missing")


def load_edits_and_deltas(path: str | Path, unedited: dict[str, torch.Tensor], device) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The saved edits (rows of `edits.json`) and deltas, checked against the weights the editor edits."""
    folder = Path(path)
    deltas = load_file(str(folder / DELTAS_FILE), device=str(device))
    if set(deltas) != set(unedited) or any(deltas[n].shape != w.shape for n, w in unedited.items()):
        raise NotASavedEditorError(f"{path}: the saved weight deltas do not fit the weights this config edits")
    return json.loads((folder / EDITS_FILE).read_text()), deltas
