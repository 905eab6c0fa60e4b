"""Which encoders run the scope classifier's two heads at inference (`SERACConfig.encoder_backend`,
`SERACConfig.cross_encoder_backend`).

Embedder (`encoder_backend`):
- "torch": the sentence-transformers embedder in float32.
- "torch-bf16": the same embedder under bfloat16 autocast: matrix products in bf16, their
  accumulation, softmax, layer norms and pooling in float32. Where the device multiplies bf16
  natively (CPUs with AMX or AVX512-BF16, most GPUs) this about doubles encoding speed (1.96x
  the edits float32 adds per CPU-second on this project's AMX machine); its vectors have cosine
  >= 0.9999 to the float32 ones (benchmarks/serac/README.md), so they are the same embedding
  space: a memory built with either is searched with the other. Emulated bf16 is slower.
- "onnx", "onnx-int8": the embedder on ONNX Runtime (`onnx_embedder.OnnxEmbedder`): "onnx"
  gives the float32 vectors (the same space) faster on a CPU; int8 vectors move a little and form
  a space of their own.
- "auto" (the default): "torch-bf16" where the device multiplies bf16 natively; else, on a CPU
  with the `onnx` extra installed, "onnx"; else "torch". It is resolved when an editor opens, so
  a saved editor moves between machines and keeps its memory (all three are one space).

Cross-encoder (`cross_encoder_backend`): "torch", or "onnx" (`onnx_cross_encoder`: the same
logits, faster on a CPU); "auto": "onnx" on a CPU with the `onnx` extra, else "torch".
"""

import copy

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from serac.serac.onnx_cross_encoder import OnnxCrossEncoder
from serac.serac.onnx_embedder import ONNX_BACKENDS, OnnxEmbedder
from serac.serac.onnx_export import onnx_available

ENCODER_BACKENDS = ("auto", "torch", "torch-bf16", *ONNX_BACKENDS)
CROSS_ENCODER_BACKENDS = ("auto", "torch", "onnx")


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices in hardware (emulated bf16 is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # torch.cpu's capability probes are private; a torch without them counts as no bf16.
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def resolve_encoder_backend(backend: str, device: torch.device) -> str:
    """The concrete embedder backend "auto" stands for on `device`; any other backend as it is."""
    if backend != "auto":
        return backend
    return "torch-bf16" if native_bfloat16(device) else _float32_backend(device)


def resolve_cross_encoder_backend(backend: str, device: torch.device) -> str:
    """The concrete cross-encoder backend "auto" stands for on `device`; any other as it is."""
    return _float32_backend(device) if backend == "auto" else backend


def _float32_backend(device: torch.device) -> str:
    """ONNX Runtime on a CPU where the `onnx` extra is installed (faster there, the same outputs), else torch."""
    return "onnx" if device.type == "cpu" and onnx_available() else "torch"


class BFloat16Embedder:
    """`encode(texts)` as the embedder gives it, computed under bfloat16 autocast.

    It runs a copy of the embedder taken when the editor opens (as the ONNX backends export one)
    whose linear layers hold their weights in bf16 already: autocast would otherwise cast every
    weight again on each call, which made a one-query encode slower than float32's. The vectors
    are the same as autocast over the float32 weights (tested)."""

    space_suffix = ""  # the float32 space: cosine >= 0.9999 to the float32 vectors

    def __init__(self, embedder: SentenceTransformer):
        self.embedder = copy.deepcopy(embedder).eval()
        for module in self.embedder.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-norm float32 embeddings [n, dim], batched by length (sentence-transformers sorts them)."""
        device = self.embedder.device
        with torch.autocast(device.type, dtype=torch.bfloat16):
            vectors = self.embedder.encode(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().cpu().numpy()


def inference_encoder(embedder: SentenceTransformer, backend: str):
    """The encoder `ScopeClassifier.use_fast_encoder` takes for `backend` (None: the float32 embedder)."""
    backend = resolve_encoder_backend(backend, embedder.device)
    if backend == "torch":
        return None
    if backend == "torch-bf16":
        return BFloat16Embedder(embedder)
    return OnnxEmbedder(embedder, backend)


def inference_cross_encoder(cross_encoder, backend: str):
    """The scorer `ScopeClassifier.use_fast_cross_encoder` takes for `backend` (None: the torch cross-encoder)."""
    if resolve_cross_encoder_backend(backend, cross_encoder.device) == "torch":
        return None
    return OnnxCrossEncoder(cross_encoder)
