"""One fine-tuning run: the whole FT / FT+KL / FT-L step on one screen."""

import torch

from mend.finetune.config import FTConfig
from mend.finetune.locality import LocalityAnchor
from serac.core.language_model import LanguageModel
from serac.core.lower_blocks import lower_block_states

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def fine_tune(
    language_model: LanguageModel,
    batch: dict[str, torch.Tensor],
    trainable: dict[str, torch.nn.Parameter],
    unedited: dict[str, torch.Tensor],
    config: FTConfig,
    locality: LocalityAnchor | None = None,
) -> int:
    """Train `trainable` in place on the NLL of `batch`; returns the number of steps taken.

    `unedited` holds the trainable weights before any edit: FT-L's L-inf ball is centred on
    them, so however many edits accumulate no weight ends further than epsilon from the base.
    The blocks below the trained weights do not change during the run: they run once, and every
    step runs only the blocks from the lowest trained one up (`serac.core.lower_blocks`; the whole
    model where the trained weights are not all inside the layer stack).
    """
    optimizer = _OPTIMIZERS[config.optimizer](trainable.values(), lr=config.lr)
    lower = lower_block_states(language_model, batch, list(trainable))
    lower_locality = lower_block_states(language_model, locality.batch, list(trainable)) if config.kl_weight > 0 else None
    steps_taken = 0
    with torch.enable_grad():
        for _ in range(config.steps):
            loss = language_model.nll(batch, lower=lower)
            if config.early_stop_nll is not None and loss.item() < config.early_stop_nll:
                break
            if config.kl_weight > 0:
                loss = loss + config.kl_weight * locality.kl(lower_locality)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the fine-tuning loss became {loss.item()}; lower config.lr ({config.lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps_taken += 1
            if config.norm_constraint is not None:
                clamp_to_ball(trainable, unedited, config.norm_constraint)
    optimizer.zero_grad(set_to_none=True)
    return steps_taken


@torch.no_grad()
def clamp_to_ball(weights: dict[str, torch.nn.Parameter], centres: dict[str, torch.Tensor], radius: float) -> None:
    """Clamp every weight to within `radius` of its centre (the L-inf ball FT-L keeps to)."""
    for name, weight in weights.items():
        weight.copy_(torch.clamp(weight, min=centres[name] - radius, max=centres[name] + radius))
