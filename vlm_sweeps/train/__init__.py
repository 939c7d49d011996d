"""Training: stage plans as parameter groups, and the loop."""

import os


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of its job (torchrun's RANK, else SLURM's task id), read from
    the environment alone: callable before torch is imported (tracking_process.prestart)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0


class Diverged(RuntimeError):
    """Training produced a non-finite loss, gradient or weight: the run fails, its last finite
    checkpoint is kept (train/loop.py, train/checkpoint.py)."""


class NotItsWeights(ValueError):
    """A checkpoint that is not a FINISHED run's own final state (train/final_weights.py); the message
    (one line) names the run, the run the checkpoint belongs to, and what to do. Defined here, with no
    torch import, so that the entry point can catch it before the job imports torch."""
