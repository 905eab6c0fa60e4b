"""Speed and recall of the edit memory's vector indexes, and write throughput of its store.

For each size: random unit vectors of dim 384 (all-MiniLM-L6-v2's), one VectorIndex per
kind (flat, hnsw, ivf), then for each search setting (HNSW ef_search, IVF nprobe)
  - search latency of single queries (batch of 1, as SERAC routes one prompt at a time),
  - recall@1 against exact flat search, for "paraphrase" queries (a stored vector plus
    gaussian noise, renormalised) and for random unit queries.
Then EditStore / EditMemory write throughput.

    PYTHONPATH=. .venv/bin/python benchmarks/memory/bench_memory.py --sizes 10000 100000 1000000
"""

import argparse
import datetime
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from index import EditMemory, EditStore, MemoryConfig, VectorIndex

DIM = 384


def random_unit_vectors(count: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def paraphrase_queries(stored: np.ndarray, count: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Stored vectors plus gaussian noise of expected norm `noise`, renormalised."""
    sources = stored[rng.choice(len(stored), size=count, replace=False)]
    noisy = sources + rng.standard_normal(sources.shape, dtype=np.float32) * (noise / np.sqrt(DIM))
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def ivf_nlist_for(size: int) -> int:
    """About 2*sqrt(size) clusters, a power of two: at 1M, 2048 lists reach recall@1 0.99
    with half the scanning 1024 lists need."""
    return 2 ** round(np.log2(2 * np.sqrt(size)))


def milliseconds_per_query(vector_index: VectorIndex, queries: np.ndarray) -> tuple[float, float, float]:
    """Searching one query at a time, k=1: (mean wall-clock, 99th percentile wall-clock,
    mean CPU time of this thread). CPU time leaves out waiting for a core that other
    work holds, so it is what a query costs on an idle core."""
    wall, cpu = [], []
    for query in queries:
        wall_start, cpu_start = time.perf_counter(), time.thread_time()
        vector_index.search(query[None, :], k=1)
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.thread_time() - cpu_start)
    return 1000 * float(np.mean(wall)), 1000 * float(np.percentile(wall, 99)), 1000 * float(np.mean(cpu))


def top1(vector_index: VectorIndex, queries: np.ndarray) -> np.ndarray:
    return vector_index.search(queries, k=1)[1][:, 0]


def search_settings(vector_index: VectorIndex, args: argparse.Namespace) -> Iterator[str]:
    """Apply each search setting to be measured in turn, naming it."""
    swept = {"hnsw": ("ef_search", args.ef_search), "ivf": ("nprobe", args.nprobe)}
    if vector_index.kind not in swept:
        yield "exact"
        return
    name, values = swept[vector_index.kind]
    for value in values:
        vector_index.set_search_settings(**{name: value})
        yield f"{name}={value}"


def bench_size(size: int, args: argparse.Namespace, rng: np.random.Generator) -> None:
    stored = random_unit_vectors(size, rng)
    paraphrases = paraphrase_queries(stored, args.queries, args.noise, rng)
    random_queries = random_unit_vectors(args.queries, rng)
    nlist = args.ivf_nlist or ivf_nlist_for(size)
    configs = {
        "flat": (MemoryConfig(), "-"),
        "hnsw": (MemoryConfig(index_kind="hnsw", hnsw_m=args.hnsw_m, hnsw_ef_construction=args.ef_construction), f"M={args.hnsw_m} efConstruction={args.ef_construction}"),
        "ivf": (MemoryConfig(index_kind="ivf", ivf_nlist=nlist), f"nlist={nlist}"),
    }
    exact_top1: dict[str, np.ndarray] = {}
    for kind in args.kinds:
        config, build_description = configs[kind]
        faiss.omp_set_num_threads(args.build_threads)
        start = time.perf_counter()
        vector_index = VectorIndex(DIM, config)
        vector_index.add(np.arange(size), stored)
        build_seconds = time.perf_counter() - start
        faiss.omp_set_num_threads(args.search_threads)
        for setting in search_settings(vector_index, args):
            # Exact search costs size*dim flops per query; fewer timed queries keep 1M short.
            timed = paraphrases[: args.flat_timed_queries if kind == "flat" else args.timed_queries]
            mean_ms, p99_ms, cpu_ms = milliseconds_per_query(vector_index, timed)
            found = {"paraphrase": top1(vector_index, paraphrases), "random": top1(vector_index, random_queries)}
            if kind == "flat":
                exact_top1 = found
            recall = {name: np.mean(found[name] == exact_top1[name]) for name in found}
            print(
                f"| {size:,} | {kind} | {build_description} | {setting} | {build_seconds:.1f} | {mean_ms:.2f} | {p99_ms:.2f} | {cpu_ms:.2f} "
                f"| {recall['paraphrase']:.3f} | {recall['random']:.3f} |",
                flush=True,
            )
        del vector_index


def add_many_rate(destination: EditStore | EditMemory, prompts: list[str], targets: list[str], vectors: np.ndarray, batch: int) -> float:
    """Edits per second of add_many over all the edits, one batch at a time."""
    start = time.perf_counter()
    for first in range(0, len(prompts), batch):
        part = slice(first, first + batch)
        destination.add_many(prompts[part], targets[part], vectors[part])
    return len(prompts) / (time.perf_counter() - start)


def bench_writes(args: argparse.Namespace, rng: np.random.Generator) -> None:
    count, batch = args.write_edits, args.batch
    vectors = random_unit_vectors(count, rng)
    prompts = [f"What is the capital of country number {i}?" for i in range(count)]
    targets = [f"City {i}" for i in range(count)]
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        store = EditStore(Path(scratch) / "edits.sqlite", DIM, "bench")
        rate = add_many_rate(store, prompts, targets, vectors, batch)
        print(f"| EditStore.add_many, batches of {batch:,} | {count:,} | {rate:,.0f}/s |", flush=True)
        single = min(count, 1000)
        start = time.perf_counter()
        for i in range(single):
            store.add(prompts[i], targets[i], vectors[i])
        print(f"| EditStore.add, one commit each | {single:,} | {single / (time.perf_counter() - start):,.0f}/s |", flush=True)
        store.close()

        with EditMemory(Path(scratch) / "memory", DIM, "bench", MemoryConfig(flush_every=0)) as memory:
            rate = add_many_rate(memory, prompts, targets, vectors, batch)
            print(f"| EditMemory.add_many (store + flat index), batches of {batch:,} | {count:,} | {rate:,.0f}/s |", flush=True)
            start = time.perf_counter()
            memory.flush()
            print(f"| EditMemory.flush (writes vectors.faiss) | {count:,} | {time.perf_counter() - start:.2f} s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="index sizes; add 1000000 for the 1M case")
    parser.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivf"], choices=["flat", "hnsw", "ivf"], help="flat first: it is the reference")
    parser.add_argument("--queries", type=int, default=1000, help="queries per recall measurement")
    parser.add_argument("--timed-queries", type=int, default=300, help="queries timed one by one")
    parser.add_argument("--flat-timed-queries", type=int, default=50, help="queries timed one by one on exact search")
    parser.add_argument("--noise", type=float, default=0.5, help="expected norm of the noise added to paraphrase queries")
    parser.add_argument("--hnsw-m", type=int, default=MemoryConfig.hnsw_m)
    parser.add_argument("--ef-construction", type=int, default=MemoryConfig.hnsw_ef_construction)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--ivf-nlist", type=int, default=None, help="IVF lists (default: about 2*sqrt(size))")
    parser.add_argument("--build-threads", type=int, default=2, help="faiss OpenMP threads while building")
    parser.add_argument("--search-threads", type=int, default=1, help="faiss OpenMP threads while searching; one query uses one")
    parser.add_argument("--write-edits", type=int, default=100_000, help="edits written in the throughput measurements")
    parser.add_argument("--batch", type=int, default=1000, help="add_many batch size")
    parser.add_argument("--scratch", default=None, help="folder for the throughput measurements' files (default: system temp)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.kinds[0] != "flat":
        parser.error("--kinds must start with flat: recall is measured against it")

    rng = np.random.default_rng(args.seed)
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M} | {platform.machine()} | {os.cpu_count()} CPUs | load average {os.getloadavg()[0]:.1f} | faiss {faiss.__version__}")
    print(f"dim {DIM}, {args.queries} recall queries, paraphrase noise norm {args.noise}, faiss threads: {args.build_threads} build, {args.search_threads} search\n")
    print("| vectors | kind | built with | search setting | build s | ms/query mean | ms/query p99 | CPU ms/query | recall@1 paraphrase | recall@1 random |")
    print("|---:|---|---|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        bench_size(size, args, rng)
    print("\n| write path | edits | rate |")
    print("|---|---:|---:|")
    bench_writes(args, rng)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
