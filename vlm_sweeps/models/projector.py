"""Projectors from vision features to LLM input embeddings (the Prismatic definitions)."""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    """`linear`: Linear(v->l). `gelu-mlp`: Linear(v->l), GELU, Linear(l->l).
    `fused-gelu-mlp` (fused backbones): Linear(v->4v), GELU, Linear(4v->l), GELU, Linear(l->l)."""

    KINDS = ("linear", "gelu-mlp", "fused-gelu-mlp")

    def __init__(self, kind: str, vision_dim: int, llm_dim: int):
        super().__init__()
        if kind == "linear":
            layers: list[nn.Module] = [nn.Linear(vision_dim, llm_dim)]
        elif kind == "gelu-mlp":
            layers = [nn.Linear(vision_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, llm_dim)]
        elif kind == "fused-gelu-mlp":
            hidden = 4 * vision_dim
            layers = [nn.Linear(vision_dim, hidden), nn.GELU(), nn.Linear(hidden, llm_dim), nn.GELU(),
                      nn.Linear(llm_dim, llm_dim)]
        else:
            raise ValueError(f"unknown projector {kind!r}; known: {', '.join(self.KINDS)}")
        self.kind = kind
        self.vision_dim, self.llm_dim = vision_dim, llm_dim
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        assert features.shape[-1] == self.vision_dim, (features.shape, self.vision_dim)
        return self.net(features)  # [B, N, v] -> [B, N, l]
