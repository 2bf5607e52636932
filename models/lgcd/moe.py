"""MoE fusion of the source condition and the generated target preference (section 3.5).

The gate sees h_cond only (eq 23): the condition comes from real interactions
and is stable, while h_rev is generated and may carry residual noise, so
letting it pick experts would let generation errors steer the fusion. Every
expert reads [h_cond ⊕ h_rev] and maps 2d -> d (eq 24).

``LinearFusion`` is Table 3's "w/o MoE Fusion" ablation: one linear 2d -> d map.
"""

import torch
from torch import Tensor, nn


class MoEFusion(nn.Module):
    """h_final = sum_n softmax(W_gate h_cond)_n * Expert_n([h_cond ⊕ h_rev]) (eqs 23 and 24)."""

    def __init__(self, d: int, n_experts: int = 8):
        super().__init__()
        self.d, self.n_experts = d, n_experts
        self.gate = nn.Linear(d, n_experts, bias=False)  # W_gate (the paper's R^{d x 1} per expert)
        self.experts = nn.Linear(2 * d, n_experts * d)  # all experts as one (2d -> n_e*d) matmul

    def gate_weights(self, h_cond: Tensor) -> Tensor:
        """Gate weights alpha (B, n_e) of eq 23; rows sum to 1 and depend on h_cond only."""
        return torch.softmax(self.gate(h_cond), dim=-1)

    def forward(self, h_cond: Tensor, h_rev: Tensor) -> Tensor:
        alpha = self.gate_weights(h_cond)  # (B, n_e)
        x = torch.cat([h_cond, h_rev], dim=-1)  # (B, 2d)
        outs = self.experts(x).view(-1, self.n_experts, self.d)  # (B, n_e, d)
        return torch.einsum("be,bed->bd", alpha, outs)  # (B, d)


class LinearFusion(nn.Module):
    """w/o MoE Fusion: h_final = W [h_cond ⊕ h_rev] + b."""

    def __init__(self, d: int):
        super().__init__()
        self.proj = nn.Linear(2 * d, d)

    def forward(self, h_cond: Tensor, h_rev: Tensor) -> Tensor:
        return self.proj(torch.cat([h_cond, h_rev], dim=-1))  # (B, d)


def build_fusion(kind: str, d: int, n_experts: int) -> nn.Module:
    """Build the fusion head named by ``LGCDConfig.fusion``."""
    if kind == "moe":
        return MoEFusion(d, n_experts)
    if kind == "linear":
        return LinearFusion(d)
    raise ValueError(f"unknown fusion {kind!r}; allowed ['moe', 'linear']")
