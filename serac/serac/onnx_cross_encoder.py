"""The scope classifier's cross-encoder run by ONNX Runtime in float32, for routing.

Its logits are the torch ones to float rounding (tested), so routing is unchanged; on an AVX2
machine with two threads a routed query took 60 ms with it against 82 with the torch
cross-encoder (benchmarks/serac/README.md). Training always uses the torch cross-encoder. The
export is `onnx_export`'s.
"""

import torch
from sentence_transformers import CrossEncoder

from serac.serac.onnx_export import onnx_session


class OnnxCrossEncoder:
    """`logits(edit_texts, queries)` as the cross-encoder scores the pairs, from an ONNX Runtime session."""

    def __init__(self, cross_encoder: CrossEncoder, threads: int | None = None):
        self.cross_encoder = cross_encoder  # its tokenizer and settings prepare the inputs
        sample = cross_encoder.preprocess([("a sentence to trace the graph with", "another"), ("a", "b")])
        self.head = onnx_session(cross_encoder, sample, "scores", threads=threads)

    def logits(self, edit_texts: list[str], queries: list[str]) -> torch.Tensor:
        """The in-scope logit of each (edit, query) pair [n]."""
        scores = self.head.run(self.cross_encoder.preprocess(list(zip(edit_texts, queries))))
        return torch.from_numpy(scores).reshape(len(edit_texts))
