"""Checkpoints that resume a job exactly: trained weights, optimizer, scheduler, stage and step
(which also fixes the data position: batches are a pure function of seed and step), RNG states.

Written atomically (temp file in the same folder, fsync, rename) and only by rank 0; read with
`torch.load(weights_only=True)`, never arbitrary pickle. A checkpoint is never written with a
non-finite weight (a diverged run keeps its last finite one). One that cannot be read (truncated,
foreign, of another format) is moved aside, never deleted, and the job starts afresh.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import torch

from vlm_sweeps.atomic import atomic_write
from vlm_sweeps.train import Diverged, is_rank_zero

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
REQUIRED = ("stage_index", "stage_step", "stage_steps")  # what every job checkpoint holds


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of `state` that hold a NaN or an infinity."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def read_or_set_aside(path: Path, required: tuple[str, ...] = (), what: str = "checkpoint") -> dict[str, Any] | None:
    """`torch.load(path, weights_only=True)`, or None when there is no file. A file that cannot be
    read, or that lacks a `required` key, is renamed to `<name>.unreadable-<time>` beside it
    (kept for inspection), with a warning naming both paths: the caller starts afresh."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        problem = None if isinstance(state, dict) else f"holds a {type(state).__name__}, not a {what}"
        if problem is None and any(k not in state for k in required):
            problem = f"lacks {', '.join(k for k in required if k not in state)}: not a {what} of this version"
    except Exception as err:  # truncated, foreign, or refused by the safe unpickler
        first_line = (str(err).splitlines() or [""])[0][:200]  # (PyTorch's advice to unpickle unsafely is left out)
        problem = f"cannot be read ({type(err).__name__}: {first_line})"
    if problem is None:
        return state
    aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(aside)
    log.warning("%s %s; moved aside to %s (kept, not deleted); starting afresh without it", path, problem, aside)
    return None


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
        self.started = time.perf_counter()  # this attempt's start (the job's)
        # seconds the attempts before this one spent, as of their last checkpoint (`time/*` keys
        # without the prefix: setup_s, train_<stage>_s, job_s), from the checkpoint this one resumes
        self.earlier: dict[str, float] = {}

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict[str, Any] | None:
        """The checkpoint, or None: none yet, or an unreadable one (moved aside, see read_or_set_aside)."""
        state = read_or_set_aside(self.path, REQUIRED)
        self.earlier = {k: float(v) for k, v in ((state or {}).get("timings") or {}).items()}
        return state

    def totals(self, timings: dict[str, float]) -> dict[str, float]:
        """The seconds of all attempts so far: `timings` (this attempt's) plus the earlier ones', and
        job_s, the wall time of all of them (each up to its last checkpoint)."""
        spent = {k: self.earlier.get(k, 0.0) + timings.get(k, 0.0) for k in {*self.earlier, *timings}}
        spent["job_s"] = self.earlier.get("job_s", 0.0) + time.perf_counter() - self.started
        return spent

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` (rank 0), unless its weights are not finite: then raise Diverged, and the
        checkpoint on disk stays the last finite one."""
        if is_rank_zero():
            bad = non_finite(state.get("model", {}))
            if bad:
                raise Diverged(f"non-finite weights after step {state.get('stage_step')} of stage "
                               f"{state.get('stage_index')} ({len(bad)} tensors, e.g. {bad[0]}); the checkpoint "
                               f"{self.path} is left as it was (the last finite state)")
            atomic_save(state, self.path)

    def due(self, step: int, total: int) -> bool:
        """Every `every` optimizer steps, and always at a stage's end (`every` 0: only there), so a
        finished run keeps the checkpoint of its final step (what re-evaluating it needs)."""
        return step == total or (self.every > 0 and step % self.every == 0)


def trained_parts(cfg: Any) -> set[str]:
    """The parts (encoder, projector, llm) some stage of the plan trains: what a final checkpoint holds."""
    return {part for stage in cfg.optimization.stages for part in stage.train}


def trained_state(model: torch.nn.Module, parts: set[str]) -> dict[str, torch.Tensor]:
    """Weights of the parts that have been trained so far (frozen parts rebuild identically)."""
    return {k: v.detach().cpu() for k, v in select_parts(model.state_dict(), parts).items()}


def select_parts(state: dict[str, torch.Tensor], parts: set[str]) -> dict[str, torch.Tensor]:
    """The entries of a model state dict that belong to `parts` (encoder, projector, llm)."""
    return {k: v for k, v in state.items() if k.split(".", 1)[0] in parts}
