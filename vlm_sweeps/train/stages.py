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


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable params in two groups: weight decay on matrices, none on biases and norms (1-D)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8)


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warmup over `warmup_ratio` of the steps, then cosine decay to 0 (the anchor's schedule)."""
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, max(0, round(warmup_ratio * total_steps)), total_steps)


def count_parameters(model: nn.Module) -> dict[str, dict[str, int]]:
    return {name: {"total": sum(p.numel() for p in part.parameters()),
                   "trainable": sum(p.numel() for p in part.parameters() if p.requires_grad)}
            for name, part in model.parts().items()}
