"""MEND's editor network g: a low-rank residual MLP on z = concat(u, δ).

    h    = z + σ(s1_l ⊙ (U1 V1 z + b) + o1_l)
    g(z) = h + s2_l ⊙ U2 V2 h + o2_l

U V has rank r; s and o are a scale and offset per edited layer l, so one network serves
every layer with the same weight shape. z is first normalised with running statistics of
the training inputs. With U = 0 (identity initialisation) g(z) = z.

Two departures from the paper's equation, both as in the authors' code (IDMLP/LRLinear in
eric-mitchell/mend): the output layer has no σ (with a ReLU there g could only ever add to
z, never shrink or flip a component); and σ is ReLU with derivative 1 at 0 (`clamp`'s
convention): at identity initialisation every pre-activation is exactly 0, where `relu`'s
derivative 0 would leave the first layer without gradient for ever.
"""

import torch
from torch import nn

NORMALIZER_EPS = 1e-7
RANDOM_INIT_SCALE = 1e-2  # init="random": U V z is about this size for a normalised z


class RunningNormalizer(nn.Module):
    """Standardise features with their running mean and variance (Welford / Chan's merge).

    The statistics are updated by `update` (MEND calls it in training only). Until two rows
    have been seen the normaliser is the identity.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("sum_squares", torch.zeros(dim))  # Σ (x - mean)², Welford's M2

    @torch.no_grad()
    def update(self, rows: torch.Tensor) -> None:
        if rows.shape[0] == 0:
            return
        rows = rows.detach().float()
        n_new = rows.shape[0]
        mean_new = rows.mean(0)
        total = self.count + n_new
        shift = mean_new - self.mean
        self.sum_squares += ((rows - mean_new) ** 2).sum(0) + shift**2 * (self.count * n_new / total)
        self.mean += shift * (n_new / total)
        self.count.copy_(total)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        if self.count < 2:
            return rows
        std = (self.sum_squares / (self.count - 1)).sqrt()
        return (rows - self.mean) / (std + NORMALIZER_EPS)


class EditorNetwork(nn.Module):
    """g for the layers whose inputs have `input_dim` features and outputs `output_dim`."""

    def __init__(self, input_dim: int, output_dim: int, n_layers: int, rank: int, init: str = "identity"):
        super().__init__()
        self.input_dim, self.output_dim = input_dim, output_dim
        width = input_dim + output_dim
        rank = min(rank, width)
        self.normalizer = RunningNormalizer(width)
        self.v1 = nn.Parameter(torch.randn(rank, width))
        self.u1 = nn.Parameter(torch.zeros(width, rank))
        self.b1 = nn.Parameter(torch.zeros(width))
        self.v2 = nn.Parameter(torch.randn(rank, width))
        self.u2 = nn.Parameter(torch.zeros(width, rank))
        if init == "random":
            nn.init.normal_(self.u1, std=RANDOM_INIT_SCALE * (rank * width) ** -0.5)
            nn.init.normal_(self.u2, std=RANDOM_INIT_SCALE * (rank * width) ** -0.5)
        elif init != "identity":
            raise ValueError(f"init must be 'identity' or 'random', got {init!r}")
        self.scale1 = nn.Parameter(torch.ones(n_layers, width))
        self.offset1 = nn.Parameter(torch.zeros(n_layers, width))
        self.scale2 = nn.Parameter(torch.ones(n_layers, width))
        self.offset2 = nn.Parameter(torch.zeros(n_layers, width))

    def forward(self, inputs: torch.Tensor, output_grads: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformed (ũ, δ̃) of per-token gradient factors u [N, in], δ [N, out] at `layer`."""
        z = self.normalizer(torch.cat([inputs, output_grads], dim=-1))
        h = z + torch.clamp(self.scale1[layer] * ((z @ self.v1.T) @ self.u1.T + self.b1) + self.offset1[layer], min=0)
        g = h + self.scale2[layer] * ((h @ self.v2.T) @ self.u2.T) + self.offset2[layer]
        return g.split([self.input_dim, self.output_dim], dim=-1)
