"""Seconds per MEND training example (forward + backward of one edit, as `alg=mend_full` trains)
three ways, on the same examples in one process (so the ratios are from one run):

- the whole model in every pass, every position projected on the vocabulary (training before
  `serac.core.lower_blocks`);
- the blocks below the edited ones run once for the example and replayed, only the target
  positions projected (an example's first time: the first epoch);
- the same with those blocks' outputs already kept from an earlier step (every later epoch, and
  every validation after the first).

    .venv/bin/python benchmarks/mend/bench_training_step.py [--examples 12] [--threads 2]
"""

import argparse
import statistics
import time
from contextlib import contextmanager

import torch

from mend.mend.config import MENDConfig
from mend.mend.editor_network_training import MENDTraining
from serac.core.data import load_records
from serac.core.language_model import LanguageModel
from serac.core.models import load_language_model


@contextmanager
def whole_model_every_pass(training: MENDTraining):
    """The training code as it was: no replayed states, and every position's logits."""
    states, target_logits = training.lower_states.states, LanguageModel.target_logits
    training.lower_states.states = lambda batch: None

    def all_columns(self, batch, parameters=None, lower=None, target_columns_only=False):
        return target_logits(self, batch, parameters)

    LanguageModel.target_logits = all_columns
    try:
        yield
    finally:
        training.lower_states.states, LanguageModel.target_logits = states, target_logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=12, help="training examples (zsRE train records), one per step")
    parser.add_argument("--threads", type=int, default=None)
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    torch.manual_seed(0)
    language_model = load_language_model(arguments.model)
    # alg=mend_full's editor: rank 256, the last 3 blocks' MLP matrices, KL on the answer's positions.
    config = MENDConfig(model_name=arguments.model, rank=256, locality_positions="answer")
    training = MENDTraining(language_model, config, lr=1e-5).train()
    records = load_records("zsre", "train")[: arguments.examples + 1]
    batches = [training.collate([record]) for record in records]

    def step(batch: dict) -> float:
        start = time.perf_counter()
        training.zero_grad(set_to_none=True)
        loss, _ = training(batch)
        loss.backward()
        return time.perf_counter() - start

    step(batches[0])  # warm-up
    whole, first_time, kept = [], [], []
    for batch in batches[1:]:
        with whole_model_every_pass(training):
            whole.append(step(batch))
        first_time.append(step(batch))
        kept.append(step(batch))
    slow = statistics.median(whole)
    print(f"\nthreads: {torch.get_num_threads()}, model: {arguments.model}, {len(whole)} examples, medians\n")
    print("| MEND training, one example | seconds | ratio |")
    print("|---|---|---|")
    print(f"| whole model in every pass, every position's logits | {slow:.3f} | 1.00 |")
    for label, seconds in (("computed", first_time), ("kept from an earlier step", kept)):
        median = statistics.median(seconds)
        print(f"| lower blocks' outputs {label}, target positions' logits | {median:.3f} | {median / slow:.2f} |")
    rows = training.lower_states
    print(f"\nkept: {len(rows)} inputs of {len(batches)} examples, {rows.bytes / len(batches) / 1e6:.2f} MB per example")


if __name__ == "__main__":
    main()
