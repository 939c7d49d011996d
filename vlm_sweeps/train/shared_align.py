"""One align stage for every job that would train the same one.

Jobs with the same align signature (identity.align_signature) train the same align stage, so the
first one trains it and saves `<runs_dir>/align-<align signature>/align.pt`; the others load it
and go straight to their finetune stage. What is saved makes the finetune continue exactly as in a
job that aligned itself: the trained projector, the RNG state at the align's end, its step count
(the finetune's step offset) and its training curve (replayed into each reusing job's run).

"Train it or load it" runs under an exclusive lock on `align.lock` (filelock), so two jobs that want
the same align at once do not both train it, and none reads a half-written one (it is also written
atomically). While it trains, the align checkpoints into its own folder, so whichever job (or
SLURM align job) takes the lock next resumes it rather than starting over.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

from vlm_sweeps import identity, locks
from vlm_sweeps.atomic import atomic_write, remove_stale
from vlm_sweeps.train.checkpoint import Checkpointer, is_rank_zero, read_or_set_aside, rng_state, set_rng_state, trained_state

log = logging.getLogger(__name__)

ALIGN_FILE = "align.pt"
FORMAT = 1  # of align.pt; a file of another format is trained again (and replaced)
TRAINED, REUSED = "trained", "reused"  # values of the tag naming.TAG_ALIGN_SOURCE


def processes() -> int:
    """Processes of this job (torchrun's WORLD_SIZE, else SLURM's task count)."""
    return int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1)


class SharedAlign:
    """The align checkpoint of one align signature, in `<runs_dir>/align-<signature>/`."""

    def __init__(self, runs_dir: Path | str, signature: str, checkpoint_every: int = 0):
        self.signature = signature
        self.folder = Path(runs_dir) / f"align-{signature}"
        self.path = self.folder / ALIGN_FILE
        self.partial = Checkpointer(self.folder, checkpoint_every)  # mid-align, for a resume

    @classmethod
    def of(cls, cfg: Any) -> "SharedAlign | None":
        """The shared align of a job's config; None when the plan has no align stage or
        `run.share_align=false`."""
        signature = identity.align_signature(cfg)
        if signature is None or not cfg.run.share_align:
            return None
        if processes() > 1:  # rank 0 would train under the lock while the others wait on it: a deadlock
            log.warning("align %s not shared: a job of several processes aligns itself", signature)
            return None
        return cls(Path(cfg.paths.runs_dir).resolve(), signature, cfg.run.checkpoint_every)

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict[str, Any] | None:
        state = read_or_set_aside(self.path, ("model", "steps", "curve"), what="shared align checkpoint")
        if state is None:
            return None
        if state.get("format") != FORMAT or state.get("align_signature") != self.signature:
            log.warning("%s: format %s / signature %s, expected %s / %s: trained again", self.path,
                        state.get("format"), state.get("align_signature"), FORMAT, self.signature)
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        if is_rank_zero():
            atomic_write(self.path, lambda f: torch.save({**state, "format": FORMAT,
                                                          "align_signature": self.signature}, f))

    def lock(self):
        """Exclusive while held: blocks until no other process holds it (released on exit, also
        when the process dies)."""
        return locks.exclusive(self.folder / "align.lock", f"align {self.signature}")


def replay(curve: list, log_fn: Callable[[dict[str, float], int], None]) -> None:
    """Log a saved training curve ([[step, {metric: value}], ...]) again, point by point."""
    for step, metrics in curve:
        log_fn(dict(metrics), int(step))


def apply(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Leave `model` as the align stage leaves it: its trained weights, every part frozen and in
    eval mode, and the RNG where the align ended (what the finetune stage draws next)."""
    from vlm_sweeps.train.stages import set_trainable

    model.load_state_dict(state["model"], strict=False)
    set_trainable(model, [])
    model.eval()
    set_rng_state(state["rng"])


TrainFn = Callable[..., Any]  # train_stage with everything bound but log_fn, resume, on_checkpoint


def align_once(shared: SharedAlign, model: torch.nn.Module, stage: Any, train_fn: TrainFn,
               log_fn: Callable[[dict[str, float], int], None]) -> tuple[dict[str, Any], str]:
    """The align stage of `model`, trained here (`train_fn`) or loaded: (its saved state, TRAINED
    or REUSED). Either way `model` and the RNG end as the align stage leaves them and `log_fn`
    has received the align's whole curve."""
    with shared.lock():
        remove_stale(shared.folder)  # half-written files of a killed holder
        state = shared.load()
        if state is not None:
            replay(state["curve"], log_fn)
            apply(model, state)  # last: the RNG is set after anything logging may draw
            log.info("align %s reused from %s (%d steps)", shared.signature, shared.path, state["steps"])
            return state, REUSED
        partial = shared.partial.load()
        curve: list = []
        if partial is not None:  # an align interrupted mid-way: go on from its last checkpoint
            model.load_state_dict(partial["model"], strict=False)
            curve = [list(point) for point in partial["curve"]]
            replay(curve, log_fn)
            log.info("align %s resumes from %s at step %d", shared.signature, shared.partial.path,
                     partial["stage_step"])

        def capture(metrics: dict[str, float], step: int) -> None:
            curve.append([step, dict(metrics)])
            log_fn(metrics, step)

        parts = set(stage.train)

        def on_checkpoint(step: int, total: int, optimizer: Any, scheduler: Any) -> None:
            if shared.partial.due(step, total) and step < total:  # the last one is align.pt itself
                shared.partial.save({"stage_index": 0, "stage_step": step, "stage_steps": [step],
                                     "model": trained_state(model, parts), "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(), "rng": rng_state(), "curve": curve})

        result = train_fn(log_fn=capture, resume=partial, on_checkpoint=on_checkpoint)
        state = {"model": trained_state(model, parts), "rng": rng_state(), "steps": result.steps,
                 "curve": curve, "final_loss": result.final_loss, "seconds": result.seconds}
        shared.save(state)
        if is_rank_zero():
            shared.partial.path.unlink(missing_ok=True)
        log.info("align %s trained and saved to %s", shared.signature, shared.path)
        return state, TRAINED
