"""A toy trained algorithm for the training-loop tests: a tiny Llama learns to answer a
handful of questions.

Run as a script (`accelerate launch ... training_toy.py OUTPUT_DIR`) it trains 4 steps with
a checkpoint, then resumes the same run to 8 steps: the multi-process test.
"""

import sys

import torch
from torch import nn

from serac.core.language_model import scores_from_logits
from serac.core.models import load_language_model
from serac.core.train_config import TrainConfig
from serac.core.training import TrainableAlgorithm, train

PAIRS = [
    ("What is the capital of France?", "Paris"),
    ("Who wrote Hamlet?", "William Shakespeare"),
    ("Which river flows through Cairo?", "The Nile"),
    ("What language is spoken in Brazil?", "Portuguese"),
    ("In which country is the Eiffel Tower located?", "France"),
    ("What year did the war end?", "1945"),
    ("What do you think of the weather?", "I love it"),
    ("Topic: Sentiment:", "positive"),
]


class AnswerQuestions(TrainableAlgorithm):
    """Fine-tunes a whole tiny Llama on (prompt, target) pairs."""

    def __init__(self, attention_dropout: float = 0.0, crash_at_step: int | None = None):
        super().__init__()
        self.lm = load_language_model("tiny-llama", "cpu")
        self.model = self.lm.model
        # Dropout makes a run depend on the RNG state, which a checkpoint must restore.
        for layer in self.model.model.layers:
            layer.self_attn.attention_dropout = attention_dropout
        self.crash_at_step = crash_at_step
        self.steps_seen = []

    def collate(self, records):
        prompts, targets = zip(*records)
        return self.lm.batch(list(prompts), list(targets))

    def forward(self, batch):
        loss = self.lm.nll(batch)
        return loss, {"perplexity": loss.exp().item()}

    def validate(self, batch):
        logits, labels = self.lm.target_logits(batch)
        scores = scores_from_logits(logits, labels)
        return {"loss": self.lm.nll(batch).item(), "accuracy": sum(s.exact_match for s in scores) / len(scores)}

    def on_step_end(self, step):
        self.steps_seen.append(step)
        if step == self.crash_at_step:
            raise RuntimeError(f"simulated crash at step {step}")


class WithUnusedParameters(AnswerQuestions):
    """Has trainable parameters the loss never uses, like a BERT pooler whose output is
    ignored: several processes (DDP) must still train it."""

    def __init__(self):
        super().__init__()
        self.unused_head = nn.Linear(4, 4)


def two_process_run(output_dir: str) -> None:
    config = TrainConfig(
        output_dir=output_dir, lr=3e-3, batch_size=2, max_steps=4, val_every=2, log_every=1,
        checkpoint_every=2, early_stop_metric="accuracy", early_stop_mode="max",
    )
    train(WithUnusedParameters(), PAIRS, PAIRS, config)
    config.max_steps, config.resume = 8, True
    resumed = WithUnusedParameters()
    train(resumed, PAIRS, PAIRS, config)
    assert resumed.steps_seen == [5, 6, 7, 8], resumed.steps_seen


if __name__ == "__main__":
    two_process_run(sys.argv[1])
    # Tear the gloo group down before exit: left to interpreter shutdown, a worker thread
    # can abort the process ("terminate called without an active exception").
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
