"""SERAC query latency against the base model alone, by memory size; exhaustive routing; add_edits throughput.

    .venv/bin/python benchmarks/serac/bench_query_latency.py [--sizes 10 1000 10000 100000] [--exhaustive-at 10000]

Real models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2), untrained heads: latency does not
depend on the trained weights. Memories beyond the first `--encoded` edits are filled with
synthetic edits whose vectors are random unit vectors (encoding 100k texts would dominate
the run and does not change search cost); every measured query is encoded for real.
"""

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from serac import SERAC
from serac.core.data import load_records
from serac.serac.config import SERACConfig


def timed(function, repeats: int) -> float:
    """Median seconds of `repeats` calls (after one warm-up call)."""
    function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def fill(editor: SERAC, size: int, encoded: list[tuple[str, str]]) -> None:
    """Grow the memory to `size` edits: real encoded edits first, then synthetic ones."""
    editor.reset()
    real = encoded[:size]
    editor.add_edits(real)
    rng = np.random.default_rng(0)
    remaining = size - len(real)
    while remaining > 0:
        chunk = min(remaining, 50_000)
        vectors = rng.standard_normal((chunk, editor.classifier.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        start = size - remaining
        prompts = [f"What is the synthetic property {start + i} of entity {start + i}?" for i in range(chunk)]
        editor.memory.add_many(prompts, [f"value {start + i}" for i in range(chunk)], vectors)
        remaining -= chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10_000, 100_000])
    parser.add_argument("--exhaustive-at", type=int, default=10_000)
    parser.add_argument("--encoded", type=int, default=1000, help="real (encoded) zsRE edits at the start of the memory")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    arguments = parser.parse_args()
    torch.manual_seed(0)

    records = load_records("zsre", "train") + load_records("zsre", "dev")
    edits = [(r.prompt, r.target) for r in records][: arguments.encoded]
    out_of_scope = [r.locality_prompts[0] for r in records[:8]]
    with tempfile.TemporaryDirectory() as folder:
        editor = SERAC.from_pretrained(SERACConfig(max_new_tokens=arguments.max_new_tokens), memory_path=folder)

        started = time.perf_counter()
        editor.add_edits(edits)
        throughput = len(edits) / (time.perf_counter() - started)
        print(f"add_edits: {len(edits)} real edits in one call, {throughput:.0f} edits/s")

        query = out_of_scope[0]
        base_alone = timed(lambda: editor.base.generate([query], max_new_tokens=arguments.max_new_tokens), arguments.repeats)
        print(f"base model alone: {base_alone * 1000:.1f} ms per query ({query!r})")
        print("| edits in memory | routing only (ms) | SERAC query (ms) | ratio to base alone |")
        print("|---|---|---|---|")
        routing_at = {}
        for size in arguments.sizes:
            fill(editor, size, edits)
            routing = timed(lambda: editor.route([query]), arguments.repeats)
            full = timed(lambda: editor.query(query), arguments.repeats)
            routing_at[size] = routing
            print(f"| {size:,} | {routing * 1000:.1f} | {full * 1000:.1f} | {full / base_alone:.3f} |")

        if arguments.exhaustive_at:
            fill(editor, arguments.exhaustive_at, edits)
            fast = timed(lambda: editor.route([query]), arguments.repeats)
            editor.configure(retrieval="exhaustive")
            exhaustive = timed(lambda: editor.route([query]), 1)
            editor.configure(retrieval="faiss")
            print(
                f"routing at {arguments.exhaustive_at:,} edits: FAISS + rerank {fast * 1000:.1f} ms, "
                f"exhaustive cross-encoder {exhaustive * 1000:.0f} ms: {exhaustive / fast:.0f}x faster"
            )
        editor.close()


if __name__ == "__main__":
    main()
