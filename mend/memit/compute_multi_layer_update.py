"""MEMIT's batch update of one layer (Meng et al., 2022b, eq. 14 with the layer's share of the residual).

    Δ = R Kᵀ (λC + K Kᵀ)⁻¹

K holds one key per edit (columns), R the part of each edit's residual z_i − h_i^L that this
layer takes: (z_i − h_i^L) / (L − l + 1), the remaining layers of the range sharing the rest.
With one edit and λ → 0 this is ROME's update (Sherman–Morrison: (λC + kkᵀ)⁻¹k =
C⁻¹k / (λ + kᵀC⁻¹k)). Solved in float64.
"""

import torch


def layer_residuals(targets: torch.Tensor, current: torch.Tensor, layers_left: int) -> torch.Tensor:
    """(z − h^L) / (L − l + 1): this layer's share of each edit's residual ([n, out]); `layers_left` = L − l + 1."""
    return (targets - current) / layers_left


def multi_layer_update(keys: torch.Tensor, residuals: torch.Tensor, second_moment: torch.Tensor, mom2_weight: float) -> torch.Tensor:
    """The [out, in] update for keys [n, in] and residuals [n, out]."""
    keys64, residuals64 = keys.double(), residuals.double()
    system = mom2_weight * second_moment.double() + keys64.T @ keys64  # λC + K Kᵀ, [in, in]
    # Δᵀ = (λC + K Kᵀ)⁻¹ K Rᵀ (the system is symmetric)
    return torch.linalg.solve(system, keys64.T @ residuals64).T.to(residuals.dtype)
