"""An optimization stage is data: which parts train, and its hyperparameters. One function turns
it into trainable flags and AdamW parameter groups."""

from __future__ import annotations

import torch
from torch import nn

PARTS = ("encoder", "projector", "llm")


def set_trainable(model: nn.Module, train: list[str]) -> None:
    """requires_grad on the named parts, off elsewhere; frozen parts stay in eval mode (no dropout)."""
    unknown = set(train) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)} in a stage's `train`; known: {', '.join(PARTS)}")
    for name, part in model.parts().items():
        part.requires_grad_(name in train)
        part.train(name in train)
    if train and "llm" not in train:  # gradients cross the frozen LLM to the parts before it
        from vlm_sweeps.models.llm import checkpoint_while_frozen

        checkpoint_while_frozen(model.parts()["llm"])


def param_groups(model: nn.Module, weight_decay: float, lr: float | None = None,
                 lr_scale: dict[str, float] | None = None) -> list[dict]:
    """Trainable params in groups: weight decay on matrices, none on biases and norms (1-D); with
    `lr_scale` ({part: scale}), each scaled part in groups of its own at lr x scale."""
    scales = dict(lr_scale or {})
    unknown = set(scales) - set(PARTS)
    if unknown:
        raise ValueError(f"lr_scale names unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    groups = []
    by_scale: dict[float, list[nn.Module]] = {}
    for name, part in model.parts().items():
        by_scale.setdefault(scales.get(name, 1.0), []).append(part)
    for scale, parts in sorted(by_scale.items(), key=lambda kv: kv[0] != 1.0):
        decay, no_decay = [], []
        for part in parts:
            for p in part.parameters():
                if p.requires_grad:
                    (decay if p.ndim >= 2 else no_decay).append(p)
        extra = {} if lr is None or scale == 1.0 else {"lr": lr * scale, "lr_scale": scale}
        if decay or no_decay:
            groups += [{"params": decay, "weight_decay": weight_decay, **extra},
                       {"params": no_decay, "weight_decay": 0.0, **extra}]
    return groups


def make_optimizer(model: nn.Module, lr: float, weight_decay: float,
                   lr_scale: dict[str, float] | None = None) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, weight_decay, lr, lr_scale), lr=lr, betas=(0.9, 0.999), eps=1e-8)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup over `warmup_ratio` of the steps, then cosine decay to 0 (the anchor's schedule)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, max(0, round(warmup_ratio * total_steps)), total_steps)


def count_parameters(model: nn.Module) -> dict[str, dict[str, int]]:
    return {name: {"total": sum(p.numel() for p in part.parameters()),
                   "trainable": sum(p.numel() for p in part.parameters() if p.requires_grad)}
            for name, part in model.parts().items()}
