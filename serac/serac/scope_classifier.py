"""SERAC's scope classifier: is a query covered by a stored edit?

Two heads, sentence-transformers models both, built on one backbone (all-MiniLM-L6-v2 by
default; any sentence-transformers or transformers model name or folder), both trained:
- the embedder, a `SentenceTransformer` ending in unit norm: edits and queries are embedded
  separately, so edit vectors live in the FAISS index and a query costs one encoder pass;
  a learned scale and bias turn cosine similarity into a logit;
- the cross-encoder, a `CrossEncoder` that reads (edit, query) together and re-scores the
  few candidates the index returns, which is more precise on near misses (same subject,
  other relation). On a plain or bi-encoder backbone it is the transformer, mean pooling
  and a linear layer to one logit; a backbone that is a trained cross-encoder keeps its head.

A classifier saves into a folder: `embedder/` and `cross_encoder/` in sentence-transformers'
format (each loads on its own with `SentenceTransformer(path)` / `CrossEncoder(path)`) and
`similarity.safetensors` (the scale and bias). Editors saved before these heads kept one
`scope_classifier.safetensors`; `single_file_classifier.py` reads those.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sentence_transformers import CrossEncoder, SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
from sentence_transformers.util import batch_to_device
from torch import nn
from transformers import AutoConfig

from serac.core.models import model_folder

EMBEDDER_FOLDER = "embedder"
CROSS_ENCODER_FOLDER = "cross_encoder"
SIMILARITY_FILE = "similarity.safetensors"
CLASSIFIER_FILES = (f"{EMBEDDER_FOLDER}/modules.json", f"{CROSS_ENCODER_FOLDER}/modules.json", SIMILARITY_FILE)


class ScopeClassifier(nn.Module):
    def __init__(self, embedder: SentenceTransformer, cross_encoder: CrossEncoder, backbone: str, max_tokens: int = 128):
        super().__init__()
        self.backbone = backbone
        self.max_tokens = max_tokens
        self.embedder = embedder
        self.cross_encoder = cross_encoder
        for head in (embedder, cross_encoder):
            head.max_seq_length = max_tokens
        # Cosine similarity -> logit; starts where an untrained MiniLM separates paraphrases (cos ≈ 0.6).
        self.embed_scale = nn.Parameter(torch.tensor(20.0))
        self.embed_bias = nn.Parameter(torch.tensor(-12.0))
        self.fast_encoder = None  # a faster encoder for inference (see use_fast_encoder)
        self.fast_cross_encoder = None  # a faster pair scorer for inference (see use_fast_cross_encoder)

    @classmethod
    def from_backbone(cls, backbone: str, max_tokens: int = 128) -> "ScopeClassifier":
        """Untrained heads on the named backbone (resolved offline first, see serac.core.models)."""
        with model_folder(backbone) as folder:
            embedder = SentenceTransformer(folder, device="cpu")
            if not isinstance(embedder[-1], Normalize):
                embedder.append(Normalize())
            if _is_cross_encoder(folder):
                cross_encoder = CrossEncoder(folder, num_labels=1, device="cpu")
            else:
                transformer = Transformer(folder)
                width = transformer.get_embedding_dimension()
                head = Dense(width, 1, activation_function=nn.Identity(), module_output_name="scores")
                cross_encoder = CrossEncoder(modules=[transformer, Pooling(width, "mean"), head], device="cpu")
        return cls(embedder, cross_encoder, backbone, max_tokens)

    @classmethod
    def load(cls, folder: str | Path, backbone: str, max_tokens: int = 128) -> "ScopeClassifier":
        """A classifier saved by `save` into `folder`."""
        folder = Path(folder)
        embedder = SentenceTransformer(str(folder / EMBEDDER_FOLDER), device="cpu")
        cross_encoder = CrossEncoder(str(folder / CROSS_ENCODER_FOLDER), device="cpu")
        classifier = cls(embedder, cross_encoder, backbone, max_tokens)
        classifier.load_similarity(load_file(folder / SIMILARITY_FILE))
        return classifier

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.embedder.save(str(folder / EMBEDDER_FOLDER))
        self.cross_encoder.save(str(folder / CROSS_ENCODER_FOLDER))
        save_file({"embed_scale": self.embed_scale.detach().cpu(), "embed_bias": self.embed_bias.detach().cpu()}, folder / SIMILARITY_FILE)

    def load_similarity(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.embed_scale.copy_(tensors["embed_scale"])
            self.embed_bias.copy_(tensors["embed_bias"])

    @property
    def device(self) -> torch.device:
        return self.embed_scale.device

    @property
    def dim(self) -> int:
        return self.embedder.get_embedding_dimension()

    def use_fast_encoder(self, encoder) -> None:
        """Encode for inference with `encoder` (one of `encoder_backends.inference_encoder`; None:
        the float32 embedder); training and `embed` always use the float32 embedder."""
        self.fast_encoder = encoder

    def use_fast_cross_encoder(self, scorer) -> None:
        """Score pairs for inference with `scorer` (`encoder_backends.inference_cross_encoder`; None:
        the torch cross-encoder); training and `cross_logits` always use the torch cross-encoder."""
        self.fast_cross_encoder = scorer

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm embeddings [n, dim] (differentiable; wrap in no_grad for inference)."""
        features = batch_to_device(self.embedder.preprocess(texts), self.device)
        return self.embedder(features)["sentence_embedding"]

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Unit-norm float32 embeddings [n, dim] for inference, batched by length (None: the
        backend's own batch size: 64 for torch, see `OnnxEmbedder.encode` for ONNX)."""
        if self.fast_encoder is not None:
            return self.fast_encoder.encode(texts, batch_size) if batch_size else self.fast_encoder.encode(texts)
        vectors = self.embedder.encode(texts, batch_size=batch_size or 64, convert_to_numpy=True, show_progress_bar=False, device=self.device)
        return vectors.astype(np.float32, copy=False)

    def embedding_logits(self, edit_vectors: torch.Tensor, query_vectors: torch.Tensor) -> torch.Tensor:
        """Logits from cosine similarity of paired rows (or any broadcastable cosine matrix)."""
        return self.similarity_logits((edit_vectors * query_vectors).sum(-1))

    def similarity_logits(self, cosine: torch.Tensor) -> torch.Tensor:
        return self.embed_scale * cosine + self.embed_bias

    def cross_logits(self, edit_texts: list[str], queries: list[str]) -> torch.Tensor:
        """In-scope logits of (edit, query) pairs [n] (differentiable; `score_pairs` for inference)."""
        features = batch_to_device(self.cross_encoder.preprocess(list(zip(edit_texts, queries))), self.device)
        return self.cross_encoder(features)["scores"].squeeze(-1)

    def score_pairs(self, edit_texts: list[str], queries: list[str]) -> torch.Tensor:
        """`cross_logits` for inference, by the fast cross-encoder when there is one."""
        if self.fast_cross_encoder is not None:
            return self.fast_cross_encoder.logits(edit_texts, queries)
        return self.cross_logits(edit_texts, queries)

    def fingerprint(self) -> str:
        """Identifies the embedding space, so a memory is never searched with another encoder's vectors."""
        digest = hashlib.sha256(self.backbone.encode())
        for name, tensor in sorted(_embedder_weights(self.embedder).items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        suffix = self.fast_encoder.space_suffix if self.fast_encoder is not None else ""
        return f"{self.backbone}@{digest.hexdigest()[:16]}{suffix}"


def _embedder_weights(embedder: SentenceTransformer) -> dict[str, torch.Tensor]:
    """The embedder's weights, the transformer's under its own names (as the heads before
    sentence-transformers named them: memories built then keep their fingerprint), the other
    modules' under their position."""
    transformer = embedder[0].auto_model
    weights = dict(transformer.state_dict())
    for position, module in enumerate(embedder):
        if position > 0:
            weights.update({f"{position}.{name}": tensor for name, tensor in module.state_dict().items()})
    return weights


def _is_cross_encoder(folder: str) -> bool:
    """Whether the backbone is a trained cross-encoder (a sequence classifier with one output)."""
    config = AutoConfig.from_pretrained(folder)
    return any(name.endswith("ForSequenceClassification") for name in config.architectures or []) and config.num_labels == 1
