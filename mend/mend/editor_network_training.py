"""MEND's training objective, as an algorithm of the shared loop: L = c_edit · L_edit + L_locality.

One step edits the model with every record of the batch at once:
1. u and δ of the edits' NLL (each edit's own mean) at each edited layer, detached: no
   higher-order gradients flow through the base model;
2. the editor networks turn them into a weight update ΔW, which carries the gradient;
3. L_edit is the NLL of the edit target after the in-scope inputs (the rephrases), and
   L_locality the KL(pre ‖ post) of the next-token distributions on the locality inputs (at
   the answer's positions or all of them: `MENDConfig.locality_positions`), both with the
   weights W + ΔW run through `functional_call`: the model is never written.
"""

from dataclasses import replace

import torch
import torch.nn.functional as F

from mend.mend.compute_gradient_factors import compute_gradient_factors
from mend.mend.config import MENDConfig
from mend.mend.edited_modules import edited_modules
from mend.mend.pseudo_gradient import GradientTransform, weight_deltas
from serac.core import metrics, nethook
from serac.core.language_model import IGNORE, LanguageModel, scores_from_logits
from serac.core.lower_blocks import LowerBlockStates, LowerStateCache
from serac.core.records import EditRecord
from serac.core.training import TrainableAlgorithm


def locality_kl(pre_logits: torch.Tensor, post_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked positions of KL(pre ‖ post) between next-token distributions."""
    pre = F.log_softmax(pre_logits[mask].float(), dim=-1)
    post = F.log_softmax(post_logits[mask].float(), dim=-1)
    return (pre.exp() * (pre - post)).sum(-1).mean()


DIALOGUE_PAIRS = 3  # in-scope and locality (question, reply) pairs per dialogue edit
# CPU memory for the outputs of the blocks below the edited ones, kept across steps: with
# SmolLM2-135M a zsRE training edit's inputs take ~0.31 MB (benchmarks/mend/bench_training_step.py),
# so this holds about 13,000 such edits; alg=mend_full has about 9,900 distinct ones (zsRE's
# 899 five times and CounterFact's 9,021 per epoch), and its validation records besides.
LOWER_STATE_BYTES = 4 << 30


def training_pairs(record: EditRecord) -> tuple[tuple[str, str], list[tuple[str, str]], list[tuple[str, str]]]:
    """The (prompt, answer) pairs of one training edit: the edit, its in-scope and its locality inputs.

    Fact edits: the edit prompt and target; the rephrases (or the prompt) with the target; the
    locality prompts with their answers. Dialogue edits (with target replies) are made, as the
    dialogue protocol makes them for weight editors, with a question about the topic and a reply
    in the requested trait; in scope are other questions with other such replies; locality are
    questions about another topic with the same replies (the KL compares the model's next-token
    distributions along them, so they need no gold answers).
    """
    if record.target_replies:
        questions, replies = record.rephrases, record.target_replies
        if len(questions) < 2 or not record.locality_prompts:
            raise ValueError(f"dialogue record {record.source or record.prompt!r} needs 2+ questions and locality questions")
        in_scope = [(questions[i], replies[i % len(replies)]) for i in range(1, min(len(questions), 1 + DIALOGUE_PAIRS))]
        locality = [
            (question, replies[i % len(replies)]) for i, question in enumerate(record.locality_prompts[:DIALOGUE_PAIRS])
        ]
        return (questions[0], replies[0]), in_scope, locality
    if not record.locality_prompts or len(record.locality_answers) != len(record.locality_prompts):
        raise ValueError(
            f"record {record.source or record.prompt!r} has no locality answers for its locality prompts; "
            "MEND's locality loss needs (prompt, answer) pairs (e.g. zsRE or CounterFact records) or dialogue replies"
        )
    # A record without rephrases is measured on its own prompt.
    in_scope = [(prompt, record.target) for prompt in record.rephrases or (record.prompt,)]
    return (record.prompt, record.target), in_scope, list(zip(record.locality_prompts, record.locality_answers))


class MENDTraining(TrainableAlgorithm):
    """Trains MEND's editor networks (`self.transform`) with the shared loop.

    `lr` is the loop's learning rate (`TrainConfig.lr`): the step sizes α are scaled so that
    they learn at `config.edit_lr_lr` (see `GradientTransform.set_edit_lr_scale`). The base
    model is frozen, and is not a submodule, so the loop neither trains nor moves it and its
    dropout stays off. Frozen too are the blocks below the edited ones: their outputs for each
    training and validation input are computed once and kept, up to `lower_state_bytes`
    (`serac.core.lower_blocks`), and every pass of a step runs only the edited blocks and those above.
    """

    def __init__(
        self,
        language_model: LanguageModel,
        config: MENDConfig,
        lr: float,
        transform: GradientTransform | None = None,
        lower_state_bytes: int = LOWER_STATE_BYTES,
    ):
        super().__init__()
        model = language_model.model
        self.language_model = language_model
        self.module_names = edited_modules(model, config)
        model.requires_grad_(False)
        if transform is None:
            transform = GradientTransform.for_model(model, self.module_names, config)
        if transform.module_names != self.module_names:
            raise ValueError(f"the editor networks edit {transform.module_names}, the config {self.module_names}")
        self.config = replace(config, edit_modules=self.module_names)
        self.transform = transform.to(language_model.device)
        self.transform.set_edit_lr_scale(config.edit_lr_lr / lr)
        self.lower_states = LowerStateCache(language_model, self.module_names, lower_state_bytes)

    def collate(self, records: list[EditRecord]) -> dict:
        """Three batches: the edits, their in-scope inputs, their locality inputs with answers."""
        lm = self.language_model
        edits, in_scope, locality = [], [], []
        for record in records:
            record_edit, record_in_scope, record_locality = training_pairs(record)
            edits.append(record_edit)
            in_scope += record_in_scope
            locality += record_locality
        return {
            "edit": lm.batch(*map(list, zip(*edits))),
            "in_scope": lm.batch(*map(list, zip(*in_scope))),
            "locality": lm.batch(*map(list, zip(*locality))),
        }

    def edited_parameters(
        self, edit_batch: dict[str, torch.Tensor], lower: LowerBlockStates | None = None
    ) -> dict[str, torch.Tensor]:
        """Parameter name -> W + ΔW for the edits in `edit_batch`; ΔW carries the editor networks' gradient."""
        model = self.language_model.model
        factors = compute_gradient_factors(self.language_model, edit_batch, self.module_names, lower)
        deltas = weight_deltas(model, self.transform(factors))
        return {f"{name}.weight": nethook.get_module(model, name).weight + delta for name, delta in deltas.items()}

    def _locality_mask(self, locality_batch: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """The positions of the aligned locality logits the KL averages over (see `locality_positions`)."""
        if self.config.locality_positions == "answer" or self.language_model.is_encoder_decoder:
            return labels != IGNORE
        return locality_batch["attention_mask"][:, 1:].bool()  # each position that predicts an input token

    def _losses(self, batch: dict) -> dict:
        lm = self.language_model
        # The blocks below the edited ones run once per row (then kept); the passes below replay them.
        lower = {key: self.lower_states.states(batch[key]) for key in ("edit", "in_scope", "locality")}
        edited = self.edited_parameters(batch["edit"], lower["edit"])
        in_scope_logits, in_scope_labels = lm.target_logits(
            batch["in_scope"], parameters=edited, lower=lower["in_scope"], target_columns_only=True
        )
        # The KL over the whole input needs every position's logits; over the answer only its own.
        answer_only = self.config.locality_positions == "answer"
        with torch.no_grad():
            pre_logits, locality_labels = lm.target_logits(batch["locality"], lower=lower["locality"], target_columns_only=answer_only)
        post_logits, _ = lm.target_logits(
            batch["locality"], parameters=edited, lower=lower["locality"], target_columns_only=answer_only
        )
        edit_loss = F.cross_entropy(in_scope_logits.flatten(0, 1).float(), in_scope_labels.flatten(), ignore_index=IGNORE)
        locality_loss = locality_kl(pre_logits, post_logits, self._locality_mask(batch["locality"], locality_labels))
        return {
            "edited": edited,
            "loss": self.config.c_edit * edit_loss + locality_loss,
            "loss_edit": edit_loss,
            "loss_locality": locality_loss,
            "in_scope_logits": in_scope_logits,
            "in_scope_labels": in_scope_labels,
            "pre_logits": pre_logits,
            "post_logits": post_logits,
            "locality_labels": locality_labels,
            "lower": lower,
        }

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        losses = self._losses(batch)
        logs = {
            "loss_edit": losses["loss_edit"].item(),
            "loss_locality": losses["loss_locality"].item(),
            "edit_lr": self.transform.edit_lrs.mean().item(),
        }
        return losses["loss"], logs

    def validate(self, batch: dict) -> dict[str, float]:
        """After the batch's edits, made at once: the losses (`loss_locality` is the KL); edit and
        rephrase success, strict (exact match) and token-level, with rephrase success before the
        edits; locality both ways (strict `drawdown`, token-level `locality_token`, on the answer's
        positions, as the evaluation measures them); and the step size α of every edited layer."""
        lm = self.language_model
        losses = self._losses(batch)
        lower = losses["lower"]
        edits = scores_from_logits(
            *lm.target_logits(batch["edit"], parameters=losses["edited"], lower=lower["edit"], target_columns_only=True)
        )
        rephrases = scores_from_logits(losses["in_scope_logits"], losses["in_scope_labels"])
        rephrases_before = scores_from_logits(*lm.target_logits(batch["in_scope"], lower=lower["in_scope"], target_columns_only=True))
        locality_before = scores_from_logits(losses["pre_logits"], losses["locality_labels"])
        locality_after = scores_from_logits(losses["post_logits"], losses["locality_labels"])
        step_sizes = dict(zip(self.module_names, self.transform.edit_lrs.tolist()))
        return {
            "loss": losses["loss"].item(),
            "loss_edit": losses["loss_edit"].item(),
            "loss_locality": losses["loss_locality"].item(),
            "edit_success": metrics.edit_success(edits),
            "edit_token_accuracy": metrics.token_accuracy(edits),
            "rephrase_success": metrics.edit_success(rephrases),
            "rephrase_token_accuracy": metrics.token_accuracy(rephrases),
            "rephrase_success_before": metrics.edit_success(rephrases_before),
            "drawdown": metrics.drawdown(locality_before, locality_after),
            "locality_token": metrics.token_locality(locality_before, locality_after),
        } | {f"alpha/{name}": value for name, value in step_sizes.items()}
