"""Checkpoints that resume a job exactly: trained weights, optimizer, scheduler, stage and step
(which also fixes the data position: batches are a pure function of seed and step), RNG states.

Written atomically (temp file in the same folder, fsync, rename) and only by rank 0; read with
`torch.load(weights_only=True)`, never arbitrary pickle.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

from vlm_sweeps.atomic import atomic_write
from vlm_sweeps.train import is_rank_zero

CHECKPOINT = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save, atomically (see vlm_sweeps.atomic)."""
    atomic_write(path, lambda f: torch.save(obj, f))


class Checkpointer:
    """The checkpoint of one job, in `<runs_dir>/<signature>/`."""

    def __init__(self, folder: Path, every: int):
        self.folder = Path(folder)
        self.every = every
        self.path = self.folder / CHECKPOINT

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict[str, Any] | None:
        if not self.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, state: dict[str, Any]) -> None:
        if is_rank_zero():
            atomic_save(state, self.path)

    def due(self, step: int, total: int) -> bool:
        return self.every > 0 and (step % self.every == 0 or step == total)


def trained_state(model: torch.nn.Module, parts: set[str]) -> dict[str, torch.Tensor]:
    """Weights of the parts that have been trained so far (frozen parts rebuild identically)."""
    return {k: v.detach().cpu() for k, v in select_parts(model.state_dict(), parts).items()}


def select_parts(state: dict[str, torch.Tensor], parts: set[str]) -> dict[str, torch.Tensor]:
    """The entries of a model state dict that belong to `parts` (encoder, projector, llm)."""
    return {k: v for k, v in state.items() if k.split(".", 1)[0] in parts}
