"""Connectors from vision features to LLM input embeddings: the Prismatic MLPs and the
token-compressing connectors of the studies after it (the `projector` axis).

Every connector maps patch features [B, N, v] on a square grid (N = grid^2, channels of fused
backbones concatenated) to M visual tokens [B, M, l] in the LLM's width:

- `linear`: Linear(v->l) (Prismatic; LLaVA v1).
- `mlp` (default): the Prismatic MLP for the encoder, `gelu-mlp` for one backbone (Linear(v->l), GELU,
  Linear(l->l); LLaVA v1.5) and `fused-gelu-mlp` for fused backbones (Linear(v->4v), GELU,
  Linear(4v->l), GELU, Linear(l->l)). M = N.
- `resampler`: Perceiver resampler (Flamingo; Idefics2, MM1's ablation): `tokens` learned queries
  cross-attend to the patch features through `depth` blocks (pre-norm cross-attention + MLP).
- `pool`: 2-D average pooling of the patch grid to a side of sqrt(`tokens`), then the MLP (MM1's
  "average pooling" connector, LLaVA-NeXT/Cambrian-style token reduction).
- `pixel_shuffle`: space-to-depth by `factor` (nanoVLM, InternVL): each factor x factor block of
  patches becomes one token of factor^2 * v channels, then the MLP; a grid that is not a multiple
  of `factor` is zero-padded at its bottom and right.
- `cabstractor`: Honeybee's C-Abstractor: residual convolution blocks on the grid, adaptive
  average pooling to sqrt(`tokens`) per side, residual blocks again, then the MLP.

`tokens` (None: a quarter of the patches, ceil(grid / 2)^2) is the visual-token budget of the
compressing connectors; `num_tokens(grid)` says how many tokens the LLM sees.
"""

from __future__ import annotations

import math

import torch
from torch import nn

KINDS = ("linear", "mlp", "gelu-mlp", "fused-gelu-mlp", "resampler", "pool", "pixel_shuffle", "cabstractor")
COMPRESSING = ("resampler", "pool", "pixel_shuffle", "cabstractor")


def _mlp(vision_dim: int, llm_dim: int, fused: bool) -> nn.Sequential:
    if fused:
        hidden = 4 * vision_dim
        return nn.Sequential(nn.Linear(vision_dim, hidden), nn.GELU(), nn.Linear(hidden, llm_dim), nn.GELU(),
                             nn.Linear(llm_dim, llm_dim))
    return nn.Sequential(nn.Linear(vision_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, llm_dim))


def default_side(grid: int) -> int:
    return math.ceil(grid / 2)


def _side(tokens: int | None, grid: int) -> int:
    """The output grid side of a 2-D connector for a token budget (a square number of tokens)."""
    if tokens is None:
        return default_side(grid)
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"projector.tokens={tokens}: the 2-D connectors keep a square grid of tokens; use a "
                         f"square number (e.g. {side * side} or {(side + 1) ** 2})")
    return side


def num_tokens(kind: str, grid: int, tokens: int | None = None, factor: int = 2) -> int:
    """Visual tokens the LLM sees for `grid` x `grid` patches."""
    if kind in ("linear", "mlp", "gelu-mlp", "fused-gelu-mlp"):
        return grid * grid
    if kind == "resampler":
        return tokens if tokens is not None else default_side(grid) ** 2
    if kind == "pixel_shuffle":
        return math.ceil(grid / factor) ** 2
    return _side(tokens, grid) ** 2


class _Grid(nn.Module):
    """[B, N, C] <-> [B, C, g, g]."""

    @staticmethod
    def to_map(x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        g = math.isqrt(n)
        assert g * g == n, f"{n} patches are not a square grid"
        return x.transpose(1, 2).reshape(b, c, g, g)

    @staticmethod
    def to_tokens(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class _ResBlock(nn.Module):
    """Conv3x3 -> GroupNorm -> SiLU -> Conv3x3 -> GroupNorm, plus the input (C-Abstractor's blocks,
    without RegNet's squeeze-excitation)."""

    def __init__(self, channels: int):
        super().__init__()
        groups = math.gcd(32, channels)
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.GroupNorm(groups, channels),
                                  nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.GroupNorm(groups, channels))
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class _CrossBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(kv)
        q = q + self.attn(self.norm_q(q), kv, kv, need_weights=False)[0]
        return q + self.mlp(self.norm_mlp(q))


class Projector(nn.Module):
    """`Projector(kind, vision_dim, llm_dim, grid=..., tokens=None, factor=2, depth=2, fused=False)`:
    patch features [B, grid^2, vision_dim] -> visual tokens [B, num_tokens, llm_dim]. `kind` is
    the resolved connector (`mlp` becomes `gelu-mlp` or, with `fused`, `fused-gelu-mlp`)."""

    KINDS = KINDS

    def __init__(self, kind: str, vision_dim: int, llm_dim: int, *, grid: int | None = None,
                 tokens: int | None = None, factor: int = 2, depth: int = 2, fused: bool = False):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown projector {kind!r}; known: {', '.join(KINDS)}")
        if kind == "mlp":
            kind = "fused-gelu-mlp" if fused else "gelu-mlp"
        if kind in COMPRESSING and grid is None:
            raise ValueError(f"projector {kind} needs the patch grid")
        self.kind, self.vision_dim, self.llm_dim = kind, vision_dim, llm_dim
        self.grid, self.factor = grid, factor
        self.num_tokens = num_tokens(kind, grid or 0, tokens, factor) if grid is not None else None
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(vision_dim, llm_dim))
        elif kind in ("gelu-mlp", "fused-gelu-mlp"):
            self.net = _mlp(vision_dim, llm_dim, kind == "fused-gelu-mlp")
        elif kind == "resampler":
            heads = next(h for h in (8, 4, 2, 1) if llm_dim % h == 0)
            self.in_proj = nn.Linear(vision_dim, llm_dim)
            self.queries = nn.Parameter(torch.randn(self.num_tokens, llm_dim) * 0.02)
            self.blocks = nn.ModuleList(_CrossBlock(llm_dim, heads) for _ in range(depth))
            self.net = nn.Sequential(nn.LayerNorm(llm_dim), nn.Linear(llm_dim, llm_dim))
        elif kind == "pool":
            self.pool = nn.AdaptiveAvgPool2d(_side(tokens, grid))
            self.net = _mlp(vision_dim, llm_dim, fused)
        elif kind == "pixel_shuffle":
            self.net = _mlp(vision_dim * factor * factor, llm_dim, fused)
        elif kind == "cabstractor":
            hidden = llm_dim
            self.in_proj = nn.Conv2d(vision_dim, hidden, 1)
            self.before = nn.Sequential(*(_ResBlock(hidden) for _ in range(max(1, depth // 2))))
            self.pool = nn.AdaptiveAvgPool2d(_side(tokens, grid))
            self.after = nn.Sequential(*(_ResBlock(hidden) for _ in range(max(1, depth // 2))))
            self.net = _mlp(hidden, llm_dim, False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        assert features.shape[-1] == self.vision_dim, (features.shape, self.vision_dim)
        kind = self.kind
        if kind in ("linear", "gelu-mlp", "fused-gelu-mlp"):
            return self.net(features)  # [B, N, v] -> [B, N, l]
        if kind == "resampler":
            kv = self.in_proj(features)
            q = self.queries.to(kv.dtype).expand(features.shape[0], -1, -1)
            for block in self.blocks:
                q = block(q, kv)
            return self.net(q)
        grid = _Grid.to_map(features)  # [B, v, g, g]
        if kind == "pool":
            return self.net(_Grid.to_tokens(self.pool(grid)))
        if kind == "pixel_shuffle":
            f = self.factor
            pad = (-grid.shape[-1]) % f
            if pad:
                grid = nn.functional.pad(grid, (0, pad, 0, pad))
            return self.net(_Grid.to_tokens(nn.functional.pixel_unshuffle(grid, f)))
        x = self.after(self.pool(self.before(self.in_proj(grid))))  # cabstractor
        return self.net(_Grid.to_tokens(x))
