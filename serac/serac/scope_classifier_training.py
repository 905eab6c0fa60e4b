"""The scope classifier's training objective for the shared loop: balanced binary cross-entropy on both heads."""

import torch
import torch.nn.functional as F

from serac.core.training import TrainableAlgorithm
from serac.serac.scope_classifier import ScopeClassifier
from serac.serac.training_data import ScopePair


class ScopeClassifierTraining(TrainableAlgorithm):
    def __init__(self, classifier: ScopeClassifier):
        super().__init__()
        self.classifier = classifier

    def collate(self, pairs: list[ScopePair]) -> dict:
        return {
            "edits": [pair.edit for pair in pairs],
            "queries": [pair.query for pair in pairs],
            "labels": torch.tensor([pair.in_scope for pair in pairs]),
        }

    def _logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        edit_vectors = self.classifier.embed(batch["edits"])
        query_vectors = self.classifier.embed(batch["queries"])
        embedding_logits = self.classifier.embedding_logits(edit_vectors, query_vectors)
        cross_logits = self.classifier.cross_logits(batch["edits"], batch["queries"])
        return embedding_logits, cross_logits

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"].to(self.classifier.device)
        embedding_logits, cross_logits = self._logits(batch)
        # Pairs are built balanced (one out-of-scope per in-scope pair), so plain BCE is balanced BCE.
        embedding_loss = F.binary_cross_entropy_with_logits(embedding_logits, labels)
        cross_loss = F.binary_cross_entropy_with_logits(cross_logits, labels)
        return embedding_loss + cross_loss, {"embedding_loss": embedding_loss.item(), "cross_loss": cross_loss.item()}

    def validate(self, batch: dict) -> dict[str, float]:
        labels = batch["labels"].to(self.classifier.device).bool()
        embedding_logits, cross_logits = self._logits(batch)
        return {
            "embedding_accuracy": ((embedding_logits > 0) == labels).float().mean().item(),
            "cross_accuracy": ((cross_logits > 0) == labels).float().mean().item(),
        }
