"""ROME's closed form (Meng et al., 2022a, eq. 2): the rank-one update that maps k* to v*.

    Ŵ = W + Λ (C⁻¹k*)ᵀ,   Λ = (v* − W k*) / ((C⁻¹k*)ᵀ k*)

so Ŵ k* = v* exactly, while keys k with (C⁻¹k*)ᵀ k = 0 are left alone. `current_value` is the
unedited module's output W k* (+ its bias, if it has one), so a biased layer is handled too.
Solved in float64: C is often badly conditioned.
"""

import torch


def rank_one_update(key: torch.Tensor, value: torch.Tensor, current_value: torch.Tensor, second_moment: torch.Tensor) -> torch.Tensor:
    """The [out, in] update Λ (C⁻¹k*)ᵀ."""
    key64 = key.double()
    direction = torch.linalg.solve(second_moment.double(), key64)  # C⁻¹ k*
    residual = value.double() - current_value.double()  # v* − W k*
    return (torch.outer(residual, direction) / direction.dot(key64)).to(value.dtype)
