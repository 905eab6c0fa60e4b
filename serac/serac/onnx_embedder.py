"""The scope classifier's embedder run by ONNX Runtime, optionally with int8 weights, for inference.

The whole sentence-transformers pipeline (transformer, pooling, normalisation) is exported
with `torch.onnx` into one graph; "onnx-int8" then quantises its matrix weights to int8 per
output channel (`onnxruntime.quantization.quantize_dynamic`), which nearly doubles encoding
speed on CPU (benchmarks/serac/README.md measures it and what it costs in routing).
sentence-transformers' own ONNX backend needs `optimum`, whose releases pin transformers
below the 5.x this project uses, so the export is done here with torch and onnxruntime only.

Install with `pip install 'serac-editing[onnx]'` (onnxruntime and onnx).
"""

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from torch import nn

ONNX_BACKENDS = ("onnx", "onnx-int8")
_OPSET = 17


class _SentenceEmbedding(nn.Module):
    """Token tensors in, sentence embeddings out: the traceable form of a SentenceTransformer."""

    def __init__(self, embedder: SentenceTransformer, input_names: list[str]):
        super().__init__()
        self.embedder = embedder
        self.input_names = input_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.embedder(dict(zip(self.input_names, tensors)))["sentence_embedding"]


class OnnxEmbedder:
    """`encode(texts)` as the embedder gives it, from an ONNX Runtime session on as many
    threads as torch uses (`torch.get_num_threads()`, which follows OMP_NUM_THREADS)."""

    def __init__(self, embedder: SentenceTransformer, backend: str, threads: int | None = None):
        if backend not in ONNX_BACKENDS:
            raise ValueError(f"an ONNX encoder backend is one of {ONNX_BACKENDS}, got {backend!r}")
        try:
            import onnxruntime
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError as error:
            raise ImportError(f"encoder_backend {backend!r} needs onnxruntime and onnx: pip install 'serac-editing[onnx]'") from error
        self.backend = backend
        self.embedder = embedder  # its tokenizer and settings prepare the inputs
        # int8 weights move vectors slightly: memories built with them are a space of their own.
        self.space_suffix = "+int8" if backend == "onnx-int8" else ""
        with tempfile.TemporaryDirectory(prefix="serac-onnx-") as folder:
            path = Path(folder) / "embedder.onnx"
            self.input_names = _export(embedder, path)
            if backend == "onnx-int8":
                quantized = Path(folder) / "embedder-int8.onnx"
                quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, per_channel=True)
                path = quantized
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads or torch.get_num_threads()
            options.inter_op_num_threads = 1
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

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
            features = self.embedder.preprocess([texts[i] for i in chosen])
            inputs = {name: features[name].cpu().numpy().astype(np.int64) for name in self.input_names}
            vectors[chosen] = self.session.run(None, inputs)[0]
        return vectors


def _export(embedder: SentenceTransformer, path: Path) -> list[str]:
    """Write the embedder as an ONNX graph with dynamic batch and length; returns its input names."""
    sample = embedder.preprocess(["a sentence to trace the graph with", "another"])
    input_names = [name for name, value in sample.items() if isinstance(value, torch.Tensor)]
    module = _SentenceEmbedding(embedder, input_names).eval()
    was_training = embedder.training
    dynamic = {name: {0: "batch", 1: "tokens"} for name in input_names}
    with warnings.catch_warnings():
        # The tracer warns of shape checks it records as constants; the tests check that the
        # graph gives the torch embeddings for other batch sizes and lengths.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                tuple(sample[name].to(embedder.device) for name in input_names),
                str(path),
                input_names=input_names,
                output_names=["sentence_embedding"],
                dynamic_axes={**dynamic, "sentence_embedding": {0: "batch"}},
                opset_version=_OPSET,
                dynamo=False,  # the dynamo exporter needs onnxscript; the tracer is exact for these encoders
            )
        finally:
            embedder.train(was_training)  # the exporter restores the wrapper's mode, not the embedder's
    return input_names
