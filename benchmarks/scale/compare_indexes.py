"""Exact, IVF (as index_kind "auto" builds it) and HNSW search on real sentence embeddings.

    .venv/bin/python benchmarks/scale/compare_indexes.py --size 100000 [--cache RUN/vectors] [--encoder-backend onnx-int8]
    .venv/bin/python benchmarks/scale/compare_indexes.py --run-dir RUN   # a finished scale run's memory

Stored: `--size` edit prompts, the real CounterFact + zsRE edits and then generated hard
distractors (distractors.py), embedded with all-MiniLM-L6-v2 (untrained embedder head:
the space SERAC starts from). Queries: the rephrases of the real edits, real paraphrase
queries whose answer is their edit. Reported per index: build seconds, single-query latency
(one faiss thread, wall clock and CPU), recall@1 against exact search, and how often the
query's own edit comes first. Embeddings are cached in `--cache` (resumable, by chunk).

With `--run-dir`, the stored vectors are a finished `scale_run.py` memory's, as its trained
encoder made them (nothing is encoded again but the queries, by the same encoder); the queries
are the rephrases of the real edits found in it.
"""

import argparse
import itertools
import time
from pathlib import Path

import faiss
import numpy as np
from distractors import distractors, real_edits

from index.ivf_build import build_ivf, hits_to_rescore, rescore, scores_are_approximate
from index import IVF_STORAGES
from index.store import EditStore
from serac import SERAC
from serac.serac.config import SERACConfig
from serac.serac.encoder_backends import ENCODER_BACKENDS, inference_encoder
from serac.serac.scope_classifier import ScopeClassifier

CHUNK = 5000
TOP_K = SERACConfig.top_k  # the router's default: the candidates its cross-encoder re-scores


def cached_embeddings(texts: list[str], encode, folder: Path, name: str) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    chunks = []
    for start in range(0, len(texts), CHUNK):
        path = folder / f"{name}-{start:08d}-{len(texts[start : start + CHUNK])}.npy"
        if not path.exists():
            np.save(path.with_suffix(".partial.npy"), encode(texts[start : start + CHUNK]))
            path.with_suffix(".partial.npy").rename(path)
            print(f"  {name}: {min(start + CHUNK, len(texts)):,} of {len(texts):,} embedded", flush=True)
        chunks.append(np.load(path))
    return np.concatenate(chunks)


def stored_run(run_dir: Path, records: list, count: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(stored vectors in id order, query vectors, the row of each query's own edit) of a scale run's memory."""
    # The editor as routing loads it: its classifier with the run's encoder backend.
    editor = SERAC.load(run_dir / "editor")
    try:
        row_of_prompt = {}
        for row, edit in enumerate(editor.memory.list()):
            row_of_prompt.setdefault(edit.prompt, row)
        asked = [record for record in records if record.rephrases and record.prompt in row_of_prompt][:count]
        queries = editor.classifier.encode([record.rephrases[0] for record in asked])
    finally:
        editor.close()
    path = run_dir / "editor" / "memory" / "edits.sqlite"
    identity = EditStore.identity_of(path)
    store = EditStore(path, identity.dim, identity.encoder_name)
    try:
        vectors = np.concatenate([vectors for _, vectors in store.iter_vectors()])
    finally:
        store.close()
    return vectors, queries, [row_of_prompt[record.prompt] for record in asked]


def timed_search(index, queries: np.ndarray, params=None, k: int = TOP_K, vectors: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """(ids of the k nearest vectors [n, k], wall ms per query, CPU ms per query), one query at a
    time; an 8-bit index's hits re-scored with `vectors` (ids are rows), as EditMemory.search does
    with the vectors of its store (whose SQLite read is not timed here)."""
    approximate = scores_are_approximate(index)
    found = np.empty((len(queries), k), np.int64)
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(len(queries)):
        _, ids = index.search(queries[i : i + 1], hits_to_rescore(k, approximate), params=params)
        if approximate:
            _, ids = rescore(queries[i : i + 1], ids, vectors[ids], k)
        found[i] = ids[0]
    return found, 1000 * (time.perf_counter() - wall) / len(queries), 1000 * (time.thread_time() - cpu) / len(queries)


def row(found: np.ndarray, truth: np.ndarray, own: np.ndarray) -> str:
    """Table cells: recall@1 against exact search, the exact nearest among the TOP_K found, own edit first."""
    return f"{np.mean(found[:, 0] == truth):.3f} | {np.mean((found == truth[:, None]).any(axis=1)):.3f} | {np.mean(found[:, 0] == own):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--cache", type=Path, default=Path("outputs/scale-vectors"))
    parser.add_argument("--encoder-backend", default="onnx-int8", choices=ENCODER_BACKENDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", type=Path, help="a finished scale run: its stored vectors instead of --size/--cache")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--nlist", type=int, nargs="+", default=[None], help="IVF lists to compare (default: auto's choice)")
    parser.add_argument("--storage", nargs="+", default=list(IVF_STORAGES), choices=IVF_STORAGES, help="how IVF stores vectors (auto's default: sq8)")
    parser.add_argument("--no-hnsw", action="store_true", help="exact and IVF only (an HNSW graph of 10^6 takes long to build)")
    arguments = parser.parse_args()
    faiss.omp_set_num_threads(1)

    splits = real_edits()
    counterfact, zsre = splits["counterfact/train"] + splits["counterfact/val"], splits["zsre/train"] + splits["zsre/dev"]
    real = counterfact + zsre
    if arguments.run_dir:
        vectors, queries, answered = stored_run(arguments.run_dir, real, arguments.queries)
    else:
        prompts = [record.prompt for record in real][: arguments.size]
        prompts += [prompt for prompt, *_ in itertools.islice(distractors(counterfact, zsre, arguments.seed), arguments.size - len(prompts))]
        answered = [i for i, record in enumerate(real[: len(prompts)]) if record.rephrases][: arguments.queries]
        classifier = ScopeClassifier.from_backbone("all-minilm-l6-v2").eval()
        classifier.use_fast_encoder(inference_encoder(classifier.embedder, arguments.encoder_backend))
        encode = classifier.encode
        cache = arguments.cache / arguments.encoder_backend
        vectors = cached_embeddings(prompts, encode, cache, f"stored-seed{arguments.seed}")
        queries = cached_embeddings([real[i].rephrases[0] for i in answered], encode, cache, "queries")
    ids = np.arange(len(vectors), dtype=np.int64)

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    found, wall, cpu = timed_search(exact, queries)
    truth = found[:, 0]
    source = f"the memory of {arguments.run_dir}" if arguments.run_dir else f"{arguments.encoder_backend} embeddings"
    print(f"{len(vectors):,} stored, {len(queries):,} paraphrase queries ({source})")
    print(f"| index | built with | search setting | build s | ms/query | CPU ms/query | recall@1 vs exact | exact nearest in top {TOP_K} | own edit first |")
    print("|---|---|---|---|---|---|---|---|---|")
    own = np.array(answered)
    print(f"| exact | - | - | 0.0 | {wall:.2f} | {cpu:.2f} | {row(found, truth, own)} |")

    for nlist, storage in itertools.product(arguments.nlist, arguments.storage):
        started = time.perf_counter()
        ivf, approximation = build_ivf(ids, vectors, target_recall=0.99, nlist=nlist, storage=storage)
        built = time.perf_counter() - started
        for nprobe in sorted({approximation.nprobe_met // 2, approximation.nprobe_met, approximation.nprobe, 2 * approximation.nprobe} - {0}):
            found, wall, cpu = timed_search(ivf, queries, faiss.SearchParametersIVF(nprobe=nprobe), vectors=vectors)
            chosen = " (auto's choice)" if nprobe == approximation.nprobe else ""
            chosen += " (met the target on stored vectors)" if nprobe == approximation.nprobe_met else ""
            print(
                f"| ivf {storage} | nlist={approximation.nlist} | nprobe={nprobe}{chosen} | {built:.1f} | {wall:.2f} | {cpu:.2f} "
                f"| {row(found, truth, own)} |", flush=True
            )
        print(f"its own measurement on stored vectors: {approximation}", flush=True)
    if arguments.no_hnsw:
        return

    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(vectors.shape[1], arguments.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(vectors)
    built = time.perf_counter() - started
    for ef in arguments.ef_search:
        found, wall, cpu = timed_search(hnsw, queries, faiss.SearchParametersHNSW(efSearch=ef))
        print(
            f"| hnsw | M={arguments.hnsw_m} efConstruction=40 | ef_search={ef} | {built:.1f} | {wall:.2f} | {cpu:.2f} "
            f"| {row(found, truth, own)} |"
        )


if __name__ == "__main__":
    main()
