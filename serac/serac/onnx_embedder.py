"""The scope classifier's embedder run by ONNX Runtime, optionally with int8 weights, for inference.

"onnx" gives the torch vectors (cosine 1.00000 on 1,000 zsRE prompts) faster on a CPU without
bf16 (one-prompt encode 8.9 against 22.8 ms on an AVX2 machine, benchmarks/serac/README.md);
"onnx-int8" quantises the matrix weights to int8, faster again, with vectors that move a little
(a space of their own). The export is `onnx_export`'s.
"""

import numpy as np
from sentence_transformers import SentenceTransformer

from serac.serac.onnx_export import onnx_session

ONNX_BACKENDS = ("onnx", "onnx-int8")


class OnnxEmbedder:
    """`encode(texts)` as the embedder gives it, from an ONNX Runtime session on as many
    threads as torch uses (`torch.get_num_threads()`, which follows OMP_NUM_THREADS)."""

    def __init__(self, embedder: SentenceTransformer, backend: str, threads: int | None = None):
        if backend not in ONNX_BACKENDS:
            raise ValueError(f"an ONNX encoder backend is one of {ONNX_BACKENDS}, got {backend!r}")
        self.backend = backend
        self.embedder = embedder  # its tokenizer and settings prepare the inputs
        # int8 weights move vectors slightly: memories built with them are a space of their own.
        self.space_suffix = "+int8" if backend == "onnx-int8" else ""
        sample = embedder.preprocess(["a sentence to trace the graph with", "another"])
        self.head = onnx_session(embedder, sample, "sentence_embedding", backend == "onnx-int8", threads)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Unit-norm float32 embeddings [n, dim], batched by length (less padding).

        32 rows per run: with int8 weights, one thread encoded ~1,000 zsRE prompts per CPU-second
        at 16-32 rows, 930 at 64 and 690 at 256 (2026-12-03). Dynamic quantisation scales each
        activation tensor as a whole, so an int8 vector depends slightly on its batch-mates
        (cosine to fp32 0.986-0.987 at 8-32 rows, 0.984 at 64)."""
        vectors = np.zeros((len(texts), self.embedder.get_embedding_dimension()), np.float32)
        order = np.argsort([len(text) for text in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            vectors[chosen] = self.head.run(self.embedder.preprocess([texts[i] for i in chosen]))
        return vectors
