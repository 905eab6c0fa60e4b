"""SERAC's scope classifier: is a query covered by a stored edit?

Two heads on one kind of backbone (all-MiniLM-L6-v2 by default), both trained:
- an embedding scorer (dual encoder): edits and queries are embedded separately, so edit
  embeddings live in the FAISS index and a query costs one encoder pass;
- a cross-encoder that reads (edit, query) together and re-scores the few candidates the
  index returns, which is more precise on near misses (same subject, other relation).
"""

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from serac.core.models import load_encoder, load_tokenizer


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class ScopeClassifier(nn.Module):
    def __init__(self, backbone: str, max_tokens: int = 128):
        super().__init__()
        self.backbone = backbone
        self.max_tokens = max_tokens
        self.tokenizer = load_tokenizer(backbone)
        self.embedder = load_encoder(backbone)
        self.cross_encoder = load_encoder(backbone)
        self.cross_head = nn.Linear(self.cross_encoder.config.hidden_size, 1)
        # Cosine similarity -> logit; starts where an untrained MiniLM separates paraphrases (cos ≈ 0.6).
        self.embed_scale = nn.Parameter(torch.tensor(20.0))
        self.embed_bias = nn.Parameter(torch.tensor(-12.0))

    @property
    def device(self) -> torch.device:
        return self.cross_head.weight.device

    @property
    def dim(self) -> int:
        return self.embedder.config.hidden_size

    def _tokens(self, first: list[str], second: list[str] | None = None) -> dict[str, torch.Tensor]:
        # The tokenizer is this classifier's own (`load_tokenizer` never shares one), and every
        # call asks it for the same padding and truncation, so threads never change its state.
        encoded = self.tokenizer(
            first, second, padding=True, padding_side="right", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        return {key: value.to(self.device) for key, value in encoded.items()}

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm embeddings [n, dim] (differentiable; wrap in no_grad for inference)."""
        tokens = self._tokens(texts)
        hidden = self.embedder(**tokens).last_hidden_state
        return F.normalize(mean_pool(hidden, tokens["attention_mask"]), dim=-1)

    def embedding_logits(self, edit_vectors: torch.Tensor, query_vectors: torch.Tensor) -> torch.Tensor:
        """Logits from cosine similarity of paired rows (or any broadcastable cosine matrix)."""
        return self.similarity_logits((edit_vectors * query_vectors).sum(-1))

    def similarity_logits(self, cosine: torch.Tensor) -> torch.Tensor:
        return self.embed_scale * cosine + self.embed_bias

    def cross_logits(self, edit_texts: list[str], queries: list[str]) -> torch.Tensor:
        tokens = self._tokens(edit_texts, queries)
        hidden = self.cross_encoder(**tokens).last_hidden_state
        return self.cross_head(mean_pool(hidden, tokens["attention_mask"])).squeeze(-1)

    def fingerprint(self) -> str:
        """Identifies the embedding space, so a memory is never searched with another encoder's vectors."""
        digest = hashlib.sha256(self.backbone.encode())
        for name, tensor in sorted(self.embedder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"{self.backbone}@{digest.hexdigest()[:16]}"
