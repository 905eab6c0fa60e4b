"""Choosing the cache's distance threshold ε on validation edits (MEND, Appendix G).

Every validation edit is cached. A rephrase counts as handled when it lies within ε of its
own edit; a locality prompt when it lies farther than ε from every edit. ε* maximises the
sum of both rates; the rates are also reported at ε*/2 and 2ε*, as MEND's Table 11.
"""

import logging
from dataclasses import dataclass

import numpy as np
import torch

from serac.cache.hidden_state_keys import prompt_keys
from serac.core.language_model import LanguageModel
from serac.core.records import EditRecord

log = logging.getLogger(__name__)

SCALES = {"ε*/2": 0.5, "ε*": 1.0, "2ε*": 2.0}


@dataclass(frozen=True)
class ThresholdRates:
    epsilon: float
    in_scope_recall: float  # rephrases within ε of their own edit
    out_of_scope_rejection: float  # locality prompts farther than ε from every edit


@dataclass(frozen=True)
class Calibration:
    epsilon: float  # ε*
    rates: dict[str, ThresholdRates]  # at ε*/2, ε*, 2ε*


def calibrate_epsilon(language_model: LanguageModel, records: list[EditRecord], batch_size: int) -> Calibration:
    rephrases = [(owner, query) for owner, record in enumerate(records) for query in record.rephrases]
    localities = [query for record in records for query in record.locality_prompts]
    if not rephrases or not localities:
        raise ValueError("calibrating the cache needs validation records with rephrases and locality prompts")
    edit_keys = prompt_keys(language_model, [record.prompt for record in records], batch_size)
    rephrase_keys = prompt_keys(language_model, [query for _, query in rephrases], batch_size)
    owners = torch.tensor([owner for owner, _ in rephrases])
    in_scope = (rephrase_keys - edit_keys[owners]).norm(dim=-1).numpy()
    out_of_scope = torch.cdist(prompt_keys(language_model, localities, batch_size), edit_keys).min(dim=1).values.numpy()
    epsilon = best_threshold(in_scope, out_of_scope)
    calibration = Calibration(
        epsilon, {label: _rates(epsilon * scale, in_scope, out_of_scope) for label, scale in SCALES.items()}
    )
    log.info("calibrated cache threshold: %s", calibration)
    return calibration


def best_threshold(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float:
    """The ε maximising (in-scope distances <= ε) + (out-of-scope distances > ε), as rates.

    Candidates are the midpoints between neighbouring distances (the widest margin on both
    sides), plus 0 (route nothing farther than an exact match) and twice the largest distance
    (route everything); ties go to the smallest ε.
    """
    distances = np.unique(np.concatenate([in_scope, out_of_scope]))
    candidates = np.concatenate([[0.0], (distances[:-1] + distances[1:]) / 2, [2 * distances[-1]]])
    recall = np.searchsorted(np.sort(in_scope), candidates, side="right") / len(in_scope)
    rejection = 1 - np.searchsorted(np.sort(out_of_scope), candidates, side="right") / len(out_of_scope)
    return float(candidates[int(np.argmax(recall + rejection))])


def _rates(epsilon: float, in_scope: np.ndarray, out_of_scope: np.ndarray) -> ThresholdRates:
    return ThresholdRates(epsilon, float((in_scope <= epsilon).mean()), float((out_of_scope > epsilon).mean()))
