"""Entry point: `python -m vlm_sweeps.run [overrides]`, `-m` for a sweep (one job per combination)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vlm_sweeps.config import register_configs
from vlm_sweeps.data.llava import DataError
from vlm_sweeps.locks import Busy
from vlm_sweeps.tracking import StoreUnusable
from vlm_sweeps.tracking_process import TrackingError
from vlm_sweeps.train import Diverged, NotItsWeights
from vlm_sweeps.validate import ConfigError

register_configs()
log = logging.getLogger("vlm_sweeps")


def _multirun() -> DictConfig | None:
    """Hydra's config of this job when it is a job of a sweep (`-m`), else None."""
    try:
        hc = HydraConfig.get()
    except ValueError:
        return None
    return hc if hc.mode == RunMode.MULTIRUN else None


def current_sweep_id() -> str | None:
    """Jobs of one `-m` invocation share its sweep folder; its name is the sweep id."""
    hc = _multirun()
    return None if hc is None else Path(hc.sweep.dir).name


def sweep_size(sweep_dir: str | Path) -> int | None:
    """The jobs a sweep launches, from the plan its sweeper wrote (hydra_plugins/vlm_sweeps_sweeper;
    duplicates are not launched); None without one (another sweeper)."""
    from vlm_sweeps.tracking import SweepCallback

    try:
        planned = json.loads((Path(sweep_dir) / SweepCallback.PLAN_FILE).read_text())["jobs"]
        return sum(1 for job in planned if job.get("num") is not None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def job_position() -> str | None:
    """`job 3 of 6: <overrides>` for a job of a sweep (Hydra's job number counted from 1), the first
    line of every job's log (the local launcher's, SLURM's); None outside a sweep."""
    from vlm_sweeps.redact import redact_text

    hc = _multirun()
    if hc is None:
        return None
    total = sweep_size(hc.sweep.dir)
    of = f" of {total}" if total else ""
    return redact_text(f"job {hc.job.num + 1}{of}: {' '.join(hc.overrides.task)}".rstrip())


def interrupted(cfg: DictConfig) -> str:
    """The one line an interrupted job (Ctrl-C, SIGTERM) ends with: where its run can resume from,
    and the command that resumes it (job.resume_command: this job's own, also inside a sweep)."""
    import torch

    from vlm_sweeps import identity
    from vlm_sweeps.job import resume_command
    from vlm_sweeps.train.checkpoint import CHECKPOINT

    command = resume_command() or "the same command"
    if current_sweep_id() is not None:  # a job of a sweep: the sweep's command resumes it too
        command += " (or the sweep's command again: its finished jobs are skipped)"
    try:
        path = Path(cfg.paths.runs_dir).resolve() / identity.signature(cfg) / CHECKPOINT
        # mmap: the step and run id without reading the weights
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True) if path.is_file() else None
        step, run_id = sum(saved["stage_steps"]), saved["run_id"]
    except Exception:  # noqa: BLE001 - no checkpoint (yet), or none that can be read: the run starts again
        return f"interrupted before the run's first checkpoint: the same command starts it again: {command}"
    return f"interrupted: run {run_id} is resumable from its checkpoint at step {step}; resume: {command}"


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, float]:
    from vlm_sweeps import tracking_process

    position = job_position()
    if position:
        log.info("%s", position)
    tracking_process.prestart(cfg.tracking.process and not cfg.run.dry_run)
    from vlm_sweeps.job import Terminated, run_job  # torch, transformers: seconds, while the tracking process starts
    from vlm_sweeps.train.loop import configure_progress

    configure_progress(cfg.run.progress_every_s, cfg.run.progress_every_steps)
    try:
        result = run_job(cfg, sweep_id=current_sweep_id())
    except (KeyboardInterrupt, Terminated) as stop:
        # Ctrl-C, SIGTERM: the run stays open, marked interrupted (job.run_job); one line that says
        # so and how to go on, not a traceback (130, 143: how PinnedJob, launchers/local.py, knows it)
        from vlm_sweeps.train import distributed

        if distributed.detect().rank == 0:
            print(interrupted(cfg), file=sys.stderr, flush=True)
        raise SystemExit(stop.code if isinstance(stop, Terminated) else 130) from None
    except (ConfigError, DataError, NotItsWeights) as err:
        # the user's input is wrong (or a FINISHED run's checkpoint is another run's): say what and
        # how to fix it, without a stack trace
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except Busy as err:  # run.wait_for_owner=false and another process runs this signature
        print(f"error: {err}; it is being trained there: wait for it to end (or leave run.wait_for_owner "
              "at true to wait here and then skip or resume)", file=sys.stderr)
        raise SystemExit(3) from None
    except (TrackingError, StoreUnusable) as err:
        # the store is unreachable or lost a write (the job stopped at once, its run FAILED where the
        # store still took that): the message says which writes and what state the run is in
        print("error: tracking: " + " ".join(str(err).split()), file=sys.stderr)  # one line
        raise SystemExit(1) from None
    except Diverged as err:  # the run is FAILED with this message; the traceback would add nothing
        print(f"error: training diverged: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    if result.dry_run:
        return {}
    if result.evaluated:
        state = f"already trained: evaluated {', '.join(result.evaluated)} on its checkpoint"
    else:
        state = "skipped (already finished)" if result.skipped else "finished"
    headline = {k: v for k, v in sorted(result.metrics.items()) if not k.startswith(("train/", "time/"))}
    print(f"[{result.signature}] {state}: run {result.run_id}")
    for key, value in headline.items():
        print(f"  {key:<28} {value:.4f}")
    return result.metrics


if __name__ == "__main__":
    main()
