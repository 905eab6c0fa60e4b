"""Seconds per ROME edit and per MEMIT edit (by batch size), as a ratio to one forward+backward of the
base model, and the one-time cost of the layer statistics.

    .venv/bin/python benchmarks/rome/bench_edit_speed.py --rome-edits 2 --memit-batches 1 4 \
        --stats-tokens 5000 --num-prefixes 4 --value-steps 15 [--memit-stats-tokens 20000]

CounterFact val records, SmolLM2-135M-Instruct unless --model. The baseline is the median of 3
forward+backward passes of the whole model on one edit's prompt + target (batch 1). The
statistics are timed into a fresh temporary cache folder (so nothing cached is reused), for
ROME's layer, at `--stats-tokens` tokens; the editors time their edits with the statistics
already computed (they are computed once per layer and cached).

`--value-cache FOLDER` lets a large MEMIT batch (1,000 edits: hours of z optimisation on a CPU)
be finished across several runs: each z is stored with the seconds its optimisation took, and a
batch's time is this run's wall clock plus the recorded seconds of the z's it read back. Re-run
the same command until the batch's row is printed (`--rome-edits 0` skips ROME).
"""

import argparse
import os
import statistics
import tempfile
import time

import torch

from mend.memit import MEMITConfig, MEMITEditor
from mend.rome import ROMEConfig, ROMEEditor
from serac.core.architectures import mlp_output_name
from serac.core.data import load_records
from serac.core.layer_statistics import TextSample, second_moments
from serac.core.models import load_language_model


def forward_backward_seconds(language_model, record) -> float:
    batch = language_model.batch([record.prompt], [record.target])
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        with torch.enable_grad():
            language_model.model.requires_grad_(True)
            language_model.nll(batch).backward()
        samples.append(time.perf_counter() - started)
        language_model.model.zero_grad(set_to_none=True)
    language_model.model.requires_grad_(False)
    return statistics.median(samples)


def time_statistics_and_rome(args, language_model, records, baseline: float, settings: dict) -> None:
    rome = ROMEEditor(language_model, ROMEConfig(**settings, stats_tokens=args.rome_stats_tokens))
    with tempfile.TemporaryDirectory() as folder:
        previous, os.environ["SERAC_CACHE"] = os.environ.get("SERAC_CACHE"), folder
        try:
            started = time.perf_counter()
            name = mlp_output_name(language_model.model, rome.config.layer)
            second_moments(language_model, [name], TextSample(tokens=args.stats_tokens), args.model)
            seconds = time.perf_counter() - started
        finally:
            os.environ.pop("SERAC_CACHE") if previous is None else os.environ.update(SERAC_CACHE=previous)
    print(f"| layer statistics, layer {rome.config.layer}, {args.stats_tokens} tokens (one time) | {seconds:.1f} | "
          f"{seconds / baseline:.0f} ({args.stats_tokens / seconds:.0f} tokens/s) |", flush=True)

    rome.second_moments()
    rome.prefixes()
    times = []
    for record in records[: args.rome_edits]:
        started = time.perf_counter()
        rome.add_edits([record])
        times.append(time.perf_counter() - started)
        rome.reset()
    seconds = statistics.median(times)
    print(f"| ROME, one edit (median of {len(times)}) | {seconds:.1f} | {seconds / baseline:.0f} |", flush=True)


def time_memit(args, language_model, records, baseline: float, settings: dict) -> None:
    memit = MEMITEditor(language_model, MEMITConfig(**settings, stats_tokens=args.memit_stats_tokens, value_cache=args.value_cache))
    memit.second_moments()
    memit.prefixes()
    for size in args.memit_batches:
        started = time.perf_counter()
        memit.add_edits(records[:size])
        seconds, reused = time.perf_counter() - started, [cost.seconds for cost in memit.reused_value_costs]
        memit.reset()
        if None in reused:
            raise SystemExit(f"{args.value_cache} holds z's stored without their optimisation time: use an empty folder")
        note = f" ({len(reused)} of the z's found in earlier runs, {sum(reused):.0f} s)" if reused else ""
        seconds = (seconds + sum(reused)) / size
        print(f"| MEMIT, batch of {size}, per edit{note} | {seconds:.1f} | {seconds / baseline:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rome-edits", type=int, default=2)
    parser.add_argument("--memit-batches", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--stats-tokens", type=int, default=5000)
    parser.add_argument("--num-prefixes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning on a shared machine)")
    parser.add_argument("--value-steps", type=int, default=15)
    parser.add_argument("--rome-stats-tokens", type=int, default=100_000, help="the editor's C (cached after the first run)")
    parser.add_argument("--memit-stats-tokens", type=int, default=100_000)
    parser.add_argument("--value-cache", help="MEMIT: keep each z (and its optimisation time) here, so a stopped batch resumes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = load_records("counterfact", "val", limit=max(args.rome_edits, *args.memit_batches))
    language_model = load_language_model(args.model, "cpu")
    baseline = forward_backward_seconds(language_model, records[0])
    print(f"| what | seconds | ratio to one forward+backward ({baseline:.3f} s) |\n|---|---|---|")
    settings = dict(model_name=args.model, num_prefixes=args.num_prefixes, value_steps=args.value_steps)

    if args.rome_edits:
        time_statistics_and_rome(args, language_model, records, baseline, settings)
    time_memit(args, language_model, records, baseline, settings)

if __name__ == "__main__":
    main()
