"""The counterfactual model's training objective for the shared loop: NLL of the edit's answer for in-scope queries."""

import torch.nn.functional as F

from serac.core.language_model import IGNORE, scores_from_logits
from serac.core.training import TrainableAlgorithm
from serac.method.counterfactual import CounterfactualModel
from serac.method.training_data import CounterfactualExample


class CounterfactualTraining(TrainableAlgorithm):
    def __init__(self, counterfactual: CounterfactualModel):
        super().__init__()
        self.counterfactual = counterfactual
        self.model = counterfactual.lm.model  # registered so the loop (and DDP) sees its parameters

    def collate(self, examples: list[CounterfactualExample]) -> dict:
        return {
            "edits": [(e.edit_prompt, e.edit_target) for e in examples],
            "queries": [e.query for e in examples],
            "answers": [e.answer for e in examples],
        }

    def forward(self, batch: dict):
        loss = self.counterfactual.lm.nll(self.counterfactual.batch(batch["edits"], batch["queries"], batch["answers"]))
        return loss, {"nll": loss.item()}

    def validate(self, batch: dict) -> dict[str, float]:
        tensors = self.counterfactual.batch(batch["edits"], batch["queries"], batch["answers"])
        logits, labels = self.counterfactual.lm.target_logits(tensors)
        scores = scores_from_logits(logits, labels)
        return {
            # The loss picks the kept weights: exact match of a whole dialogue reply is ~always 0.
            "loss": F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE).item(),
            "answer_exact_match": sum(s.exact_match for s in scores) / len(scores),
            "answer_token_accuracy": sum(s.token_accuracy for s in scores) / len(scores),
        }
