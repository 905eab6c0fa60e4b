"""The counterfactual model's training objective for the shared loop.

NLL of the edit's answer for in-scope queries (SERAC). Dialogue examples also carry a
contrast reply (another trait, the opposite sentiment): `preference_weight` adds
−log σ(Δ), Δ = mean log-likelihood of the answer − of the contrast reply, which is the log
of ConvSent's own success term. NLL alone teaches the model to speak in the trait but barely
separates replies that share most of their words (dialogue success 0.528 on PersonalityEdit
dev); with the term (weight 5, alg=serac_dialogue_quick) validation σ(Δ) reached 0.92.
"""

import torch
import torch.nn.functional as F

from serac.core.language_model import scores_from_logits, target_token_logprobs
from serac.core.setting_checks import SettingsError
from serac.core.training import TrainableAlgorithm
from serac.serac.counterfactual import CounterfactualModel
from serac.serac.training_data import CounterfactualExample


class CounterfactualTraining(TrainableAlgorithm):
    def __init__(self, counterfactual: CounterfactualModel, preference_weight: float = 0.0):
        super().__init__()
        if preference_weight < 0:
            raise SettingsError(f"preference_weight must be >= 0, got {preference_weight}")
        self.counterfactual = counterfactual
        self.model = counterfactual.lm.model  # registered so the loop (and DDP) sees its parameters
        self.preference_weight = preference_weight

    def collate(self, examples: list[CounterfactualExample]) -> dict:
        return {
            "edits": [(e.edit_prompt, e.edit_target) for e in examples],
            "queries": [e.query for e in examples],
            "answers": [e.answer for e in examples],
            "contrasts": [e.contrast for e in examples],
        }

    def forward(self, batch: dict):
        loss, parts, _ = self._loss(batch)
        return loss, {name: value.item() for name, value in parts.items()}

    def validate(self, batch: dict) -> dict[str, float]:
        # The loss picks the kept weights: exact match of a whole dialogue reply is ~always 0.
        loss, parts, answers = self._loss(batch)
        scores = scores_from_logits(*answers)
        return {
            "loss": loss.item(),
            **{name: value.item() for name, value in parts.items()},
            "answer_exact_match": sum(s.exact_match for s in scores) / len(scores),
            "answer_token_accuracy": sum(s.token_accuracy for s in scores) / len(scores),
        }

    def _loss(self, batch: dict):
        """(loss, its parts, the answers' (logits, labels)): answers and contrast replies in one forward pass."""
        size = len(batch["answers"])
        contrasted = [i for i, contrast in enumerate(batch["contrasts"]) if contrast] if self.preference_weight else []
        edits = batch["edits"] + [batch["edits"][i] for i in contrasted]
        queries = batch["queries"] + [batch["queries"][i] for i in contrasted]
        targets = batch["answers"] + [batch["contrasts"][i] for i in contrasted]
        # Only the answer positions are scored: the rest (edit, query, template) needs no vocabulary projection.
        logits, labels = self.counterfactual.lm.target_logits(
            self.counterfactual.batch(edits, queries, targets), target_columns_only=True
        )
        # One log-softmax over the vocabulary serves both terms.
        token_logprobs, mask = target_token_logprobs(logits, labels)
        nll = -(token_logprobs[:size] * mask[:size]).sum() / mask[:size].sum()  # mean over the answers' tokens
        answers = (logits[:size], labels[:size])
        if not contrasted:
            return nll, {"nll": nll}, answers
        means = (token_logprobs * mask).sum(-1) / mask.sum(-1)  # per reply: TargetScore.mean_logprob
        margin = means[contrasted] - means[size:]
        preference = F.softplus(-margin).mean()  # −log σ(Δ)
        parts = {"nll": nll, "preference_loss": preference, "preference_success": torch.sigmoid(margin).mean()}
        return nll + self.preference_weight * preference, parts, answers
