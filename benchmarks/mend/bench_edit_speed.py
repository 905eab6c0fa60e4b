"""Time per edit of MEND, FT, FT+KL and FT-L, as a ratio to one forward+backward of the base model;
MEND training steps per second.

    .venv/bin/python benchmarks/mend/bench_edit_speed.py [--mend outputs/mend/editor] [--edits 20]

Every editor edits the same base model (SmolLM2-135M-Instruct unless --model), one zsRE dev
edit at a time, reset between edits (reset time is reported apart). MEND's editor networks
are untrained unless --mend names a trained editor: the time of an edit does not depend on
their weights, only on their size (--rank, the quick preset's 256 by default).
"""

import argparse
import statistics
import time

import torch

from mend import MENDEditor
from mend.finetune import FTConfig, FTEditor, FTKLConfig, FTKLEditor, FTLConfig, FTLEditor
from mend.mend.config import MENDConfig
from mend.mend.editor_network_training import MENDTraining
from serac.core.data import load_records
from serac.core.language_model import IGNORE, LanguageModel
from serac.core.models import load_language_model


def median_seconds(function, calls: list) -> float:
    """Median seconds of `function(call)` over `calls`, after one warm-up call."""
    function(calls[0])
    samples = []
    for call in calls:
        started = time.perf_counter()
        function(call)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def forward_backward(language_model: LanguageModel, edit: tuple[str, str]) -> None:
    """One teacher-forced NLL of the edit target and its gradient with respect to every weight."""
    language_model.model.zero_grad(set_to_none=True)
    logits, labels = language_model.target_logits(language_model.batch([edit[0]], [edit[1]]))
    torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE).backward()


def edit_and_time_reset(editor, edit: tuple[str, str], reset_seconds: list[float]) -> None:
    editor.add_edit(*edit)
    started = time.perf_counter()
    editor.reset()
    reset_seconds.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--mend", default=None, help="a trained MEND editor folder (default: untrained networks)")
    parser.add_argument("--rank", type=int, default=256)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--train-batch", type=int, default=4)
    arguments = parser.parse_args()
    torch.manual_seed(0)
    records = load_records("zsre", "dev")[: max(arguments.edits, arguments.train_steps * arguments.train_batch)]
    edits = [(record.prompt, record.target) for record in records[: arguments.edits]]
    locality = [prompt for record in records[: arguments.edits] for prompt in record.locality_prompts]

    base = load_language_model(arguments.model)
    base.model.requires_grad_(True)
    unit = median_seconds(lambda edit: forward_backward(base, edit), edits)
    print(f"base model forward+backward: {unit * 1000:.1f} ms (median of {len(edits)})")
    base.model.zero_grad(set_to_none=True)

    editors = {
        "MEND": lambda: (
            MENDEditor.load(arguments.mend)
            if arguments.mend
            else MENDEditor(base, MENDConfig(model_name=arguments.model, rank=arguments.rank))
        ),
        "FT": lambda: FTEditor(base, FTConfig(model_name=arguments.model)),
        "FT+KL": lambda: FTKLEditor(base, FTKLConfig(model_name=arguments.model), locality_prompts=locality),
        "FT-L": lambda: FTLEditor(base, FTLConfig(model_name=arguments.model)),
    }
    rows = []
    for label, build in editors.items():
        editor = build()
        reset_seconds: list[float] = []
        seconds = median_seconds(lambda edit, e=editor: edit_and_time_reset(e, edit, reset_seconds), edits)
        edit_seconds = seconds - statistics.median(reset_seconds)
        rows.append((label, edit_seconds, edit_seconds / unit, statistics.median(reset_seconds)))
        print(f"{label}: {edit_seconds * 1000:.1f} ms per edit")

    training = MENDTraining(base, MENDConfig(model_name=arguments.model, rank=arguments.rank), lr=1e-4)
    optimizer = torch.optim.Adam(training.transform.parameters(), lr=1e-4)
    batches = [
        training.collate(records[i * arguments.train_batch : (i + 1) * arguments.train_batch])
        for i in range(arguments.train_steps)
    ]

    def train_step(batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = training(batch)
        loss.backward()
        optimizer.step()

    step_seconds = median_seconds(train_step, batches)

    print(f"\nthreads: {torch.get_num_threads()}, model: {arguments.model}, MEND rank {arguments.rank}\n")
    print("| editor | ms per edit | ratio to one forward+backward | reset (ms) |")
    print("|---|---|---|---|")
    print(f"| base model forward+backward | {unit * 1000:.1f} | 1.00 | - |")
    for label, edit_seconds, ratio, reset in rows:
        print(f"| {label} | {edit_seconds * 1000:.1f} | {ratio:.2f} | {reset * 1000:.1f} |")
    print(
        f"\nMEND training: {1 / step_seconds:.2f} steps/s ({step_seconds * 1000:.0f} ms per step of "
        f"{arguments.train_batch} edits, median of {arguments.train_steps})"
    )


if __name__ == "__main__":
    main()
