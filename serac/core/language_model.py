"""A language model with its tokenizer: teacher-forced scoring, losses and generation.

Decoder-only and encoder-decoder models are handled here, once, so editors and metrics
never branch on the architecture.
"""

import inspect
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch.func import functional_call

IGNORE = -100
# "auto": the chat template when the tokenizer has one (instruct models), else plain text.
PROMPT_FORMATS = ("auto", "plain", "chat")


def resolve_prompt_format(prompt_format: str, tokenizer) -> str:
    """"plain" or "chat": how prompts are given to a model with this tokenizer.

    Instruct and chat models are trained to answer inside their chat template; given the raw
    question they continue it instead (SmolLM2-135M-Instruct answers '?' or '' to most NQ
    questions in plain text). So "auto" picks the template whenever the tokenizer has one,
    and plain text for base models, which have none.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if prompt_format == "chat" and not has_template:
        raise ValueError("prompt_format='chat' needs a tokenizer with a chat template")
    if prompt_format == "auto":
        return "chat" if has_template else "plain"
    return prompt_format


@dataclass
class TargetScore:
    """How a model scores one target given its prompt, token by token (teacher forced)."""

    target_ids: torch.Tensor
    logprobs: torch.Tensor
    predicted_ids: torch.Tensor

    @property
    def exact_match(self) -> bool:
        return bool(torch.equal(self.predicted_ids, self.target_ids))

    @property
    def token_accuracy(self) -> float:
        return (self.predicted_ids == self.target_ids).float().mean().item()

    @property
    def mean_logprob(self) -> float:
        return self.logprobs.mean().item()


class LanguageModel:
    """`model` + `tokenizer`; `device` moves the model (None: leave it where it is).

    `prompt_format="chat"` wraps every prompt in the tokenizer's chat template; "auto" (the
    default) does so when the tokenizer has one (see `resolve_prompt_format`). The resolved
    format is `self.prompt_format`.
    """

    def __init__(self, model, tokenizer, device=None, prompt_format: str = "auto", max_length: int = 512):
        self.model = model.to(device) if device is not None else model
        self.tokenizer = tokenizer
        self.prompt_format = resolve_prompt_format(prompt_format, tokenizer)
        self.max_length = max_length
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))

    @property
    def device(self) -> torch.device:
        # Read from the weights, so it stays right when accelerate or the user moves the model.
        return next(self.model.parameters()).device

    def format_prompt(self, prompt: str) -> str:
        if self.prompt_format == "chat":
            messages = [{"role": "user", "content": prompt}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return prompt

    def _target_ids(self, target: str, append_eos: bool) -> list[int]:
        # A leading space so the target's first word is tokenized as it would follow the prompt.
        text = target if self.is_encoder_decoder or self.prompt_format == "chat" else " " + target
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if append_eos and self.tokenizer.eos_token_id is not None:
            ids = ids + [self.tokenizer.eos_token_id]
        if not ids:
            raise ValueError(f"target {target!r} tokenizes to nothing")
        return ids

    def encode_prompt(self, prompt: str) -> tuple[str, list[int], list[tuple[int, int]]]:
        """(formatted prompt, its token ids, each token's character span in it), as `batch` tokenizes it."""
        text = self.format_prompt(prompt)
        encoded = self.tokenizer(text, add_special_tokens=not self.prompt_format == "chat", return_offsets_mapping=True)
        return text, encoded["input_ids"], [tuple(span) for span in encoded["offset_mapping"]]

    def _prompt_ids(self, prompt: str, budget: int) -> list[int]:
        ids = self.tokenizer(self.format_prompt(prompt), add_special_tokens=not self.prompt_format == "chat")["input_ids"]
        return ids[-budget:]  # keep the end of an over-long prompt: it sits next to the target

    def batch(self, prompts: list[str], targets: list[str], append_eos: bool = False) -> dict[str, torch.Tensor]:
        """Padded tensors for teacher forcing; `labels` holds the target ids, IGNORE elsewhere."""
        if len(prompts) != len(targets):
            raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
        rows = []
        for prompt, target in zip(prompts, targets):
            target_ids = self._target_ids(target, append_eos)[: self.max_length // 2]
            prompt_ids = self._prompt_ids(prompt, self.max_length - (0 if self.is_encoder_decoder else len(target_ids)))
            rows.append((prompt_ids, target_ids))
        if self.is_encoder_decoder:
            inputs = [p for p, _ in rows]
            labels = [t for _, t in rows]
        else:
            inputs = [p + t for p, t in rows]
            labels = [[IGNORE] * len(p) + t for p, t in rows]
        return self._padded(inputs, labels)

    def text_batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Padded tensors for teacher forcing plain `texts`, every token a label: no prompt format,
        never a chat template (what a text's perplexity is measured on).

        A decoder-only model reads each text from its start (with the tokenizer's special tokens,
        if it adds any), so the first token is context only; an encoder-decoder reads the text in
        its decoder, after an encoder input of only the end-of-sequence token (T5's encoding of
        the empty string). Texts longer than `max_length` tokens are cut at the end.
        """
        rows = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=not self.is_encoder_decoder)["input_ids"][: self.max_length]
            if len(ids) < (1 if self.is_encoder_decoder else 2):
                raise ValueError(f"text {text!r} is too short to score (it tokenizes to {len(ids)} token(s))")
            rows.append(ids)
        if self.is_encoder_decoder:
            return self._padded([[self.tokenizer.eos_token_id]] * len(rows), rows)
        return self._padded(rows, rows)  # `target_logits` shifts the labels, so a text's first token is never one

    def _padded(self, inputs: list[list[int]], labels: list[list[int]]) -> dict[str, torch.Tensor]:
        batch = {
            "input_ids": _pad(inputs, self.tokenizer.pad_token_id),
            "attention_mask": _pad([[1] * len(row) for row in inputs], 0),
            "labels": _pad(labels, IGNORE),
        }
        return {key: value.to(self.device) for key, value in batch.items()}

    def target_logits(
        self,
        batch: dict[str, torch.Tensor],
        parameters: dict | None = None,
        lower=None,
        target_columns_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits aligned with the target labels: (logits [B, T, V], labels [B, T]).

        `parameters` replaces some of the model's weights for this call (used by MEND to run
        the edited model without writing the weights). `lower` (`serac.core.lower_blocks`) holds
        the output of the blocks below the edited ones for this batch: only the blocks above run.
        `target_columns_only` keeps only the positions that predict a target token in some row
        (T shrinks to those columns, labels alike): a loss over the targets is unchanged, and a
        decoder-only model that takes `logits_to_keep` projects only those positions on the vocabulary.
        """
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "use_cache": False}
        labels = batch["labels"]
        if self.is_encoder_decoder:
            inputs["labels"] = labels
        else:
            labels = labels[:, 1:]  # position t predicts token t+1
        columns = target_columns(labels) if target_columns_only else None
        if columns is not None and not self.is_encoder_decoder and self.takes_logits_to_keep:
            inputs["logits_to_keep"] = columns
        with lower.replayed(self.model, batch["input_ids"]) if lower is not None else nullcontext():
            if parameters:
                output = functional_call(self.model, parameters, args=(), kwargs=inputs, strict=False)
            else:
                output = self.model(**inputs)
        logits = output.logits
        if "logits_to_keep" in inputs:
            return logits, labels[:, columns]
        if not self.is_encoder_decoder:
            logits = logits[:, :-1]
        return (logits, labels) if columns is None else (logits[:, columns], labels[:, columns])

    @cached_property
    def takes_logits_to_keep(self) -> bool:
        """Whether the model can project only some positions on the vocabulary (`logits_to_keep`)."""
        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def nll(self, batch: dict[str, torch.Tensor], parameters: dict | None = None, lower=None) -> torch.Tensor:
        """Mean negative log-likelihood of the target tokens (`lower`: see `target_logits`)."""
        logits, labels = self.target_logits(batch, parameters, lower=lower, target_columns_only=True)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)

    def score(self, prompts: list[str], targets: list[str], batch_size: int = 16) -> list[TargetScore]:
        starts = range(0, len(prompts), batch_size)
        return self._scores(self.batch(prompts[i : i + batch_size], targets[i : i + batch_size]) for i in starts)

    def text_scores(self, texts: list[str], batch_size: int = 16) -> list[TargetScore]:
        """Teacher-forced scores of every token of plain `texts` (see `text_batch`): held-out perplexity."""
        return self._scores(self.text_batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size))

    @torch.no_grad()
    def _scores(self, batches) -> list[TargetScore]:
        scores = []
        for batch in batches:
            scores.extend(scores_from_logits(*self.target_logits(batch)))
        return scores

    @torch.no_grad()
    def target_logprobs(self, prompts: list[str], targets: list[str], batch_size: int = 16) -> list[torch.Tensor]:
        """Full next-token log-probabilities at each target position: one [target_len, vocab] tensor per pair.

        What a KL divergence between two models' outputs needs (`score` keeps only the targets' own tokens).
        """
        result = []
        for start in range(0, len(prompts), batch_size):
            batch = self.batch(prompts[start : start + batch_size], targets[start : start + batch_size])
            logits, labels = self.target_logits(batch)
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            result.extend(logprobs[row][labels[row] != IGNORE].cpu() for row in range(labels.shape[0]))
        return result

    def encode_prompts(self, prompts: list[str], padding_side: str) -> dict[str, torch.Tensor]:
        """Formatted prompts as padded `input_ids` and `attention_mask`, on the model's device.

        Padded here, on the given side, rather than by the tokenizer: its padding side and
        the padding it applies are state shared by every thread using it, so flipping them
        per call would race (see the reliability tests). The end of an over-long prompt is kept.
        """
        rows = [self._prompt_ids(prompt, self.max_length) for prompt in prompts]
        batch = {
            "input_ids": _pad(rows, self.tokenizer.pad_token_id, padding_side),
            "attention_mask": _pad([[1] * len(row) for row in rows], 0, padding_side),
        }
        return {key: value.to(self.device) for key, value in batch.items()}

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 20, batch_size: int = 16) -> list[str]:
        """Greedy answers; a plain-format answer ends at its first line break."""
        answers = []
        # A decoder-only model continues the prompt, so its padding goes on the left.
        padding_side = "right" if self.is_encoder_decoder else "left"
        for start in range(0, len(prompts), batch_size):
            encoded = self.encode_prompts(prompts[start : start + batch_size], padding_side)
            output = self.model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
            )
            new_tokens = output if self.is_encoder_decoder else output[:, encoded["input_ids"].shape[1] :]
            for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True):
                answers.append(text.strip().split("\n")[0].strip() if self.prompt_format == "plain" else text.strip())
        return answers


def target_columns(labels: torch.Tensor) -> torch.Tensor:
    """Indices of the columns of aligned `labels` [B, T] that hold a target token in some row."""
    return (labels != IGNORE).any(dim=0).nonzero().squeeze(1)


def target_token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability of each label token [B, T], mask of the target positions [B, T]); differentiable.

    Positions marked IGNORE get an arbitrary value that the mask excludes.
    """
    mask = labels != IGNORE
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1), mask


def scores_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> list[TargetScore]:
    """Per-example `TargetScore`s from aligned logits and labels (IGNORE marks non-target positions)."""
    token_logprobs, mask = target_token_logprobs(logits, labels)
    predicted = logits.argmax(dim=-1)
    return [
        TargetScore(
            target_ids=labels[row][mask[row]].cpu(),
            logprobs=token_logprobs[row][mask[row]].cpu(),
            predicted_ids=predicted[row][mask[row]].cpu(),
        )
        for row in range(labels.shape[0])
    ]


def _pad(rows: list[list[int]], value: int, side: str = "right") -> torch.Tensor:
    width = max(len(row) for row in rows)
    if side == "left":
        return torch.tensor([[value] * (width - len(row)) + row for row in rows], dtype=torch.long)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=torch.long)
