"""Reads the scope classifier of editors saved before its heads were sentence-transformers
models: one `scope_classifier.safetensors` holding two bare encoders and a linear head.

Those heads computed what `ScopeClassifier.from_backbone` builds on a plain backbone (mean
pooling, unit norm; mean pooling and a linear layer to one logit), so the weights load
into it unchanged and the editor scores and routes exactly as before.
"""

from pathlib import Path

from safetensors.torch import load_file

from serac.serac.scope_classifier import ScopeClassifier

SINGLE_FILE = "scope_classifier.safetensors"


def load_single_file_classifier(path: str | Path, backbone: str, max_tokens: int) -> ScopeClassifier:
    """The classifier saved in `path` (a `scope_classifier.safetensors`); ValueError if its weights do not fit."""
    saved = load_file(path)
    classifier = ScopeClassifier.from_backbone(backbone, max_tokens)
    parts = {
        "embedder.": classifier.embedder[0].auto_model,
        "cross_encoder.": classifier.cross_encoder[0].auto_model,
        "cross_head.": classifier.cross_encoder[2].linear,
    }
    for prefix, module in parts.items():
        weights = {name[len(prefix):]: tensor for name, tensor in saved.items() if name.startswith(prefix)}
        missing, unexpected = module.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path}: the {prefix.rstrip('.')} weights do not fit {backbone!r} "
                f"({len(missing)} missing, e.g. {missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})"
            )
    classifier.load_similarity(saved)
    return classifier
