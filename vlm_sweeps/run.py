"""Entry point: `python -m vlm_sweeps.run [overrides]`, `-m` for a sweep (one job per combination)."""

from __future__ import annotations

import logging
import sys

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


def current_sweep_id() -> str | None:
    """Jobs of one `-m` invocation share its sweep folder; its name is the sweep id."""
    try:
        hc = HydraConfig.get()
    except ValueError:
        return None
    if hc.mode != RunMode.MULTIRUN:
        return None
    from pathlib import Path

    return Path(hc.sweep.dir).name


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, float]:
    from vlm_sweeps import tracking_process

    tracking_process.prestart(cfg.tracking.process and not cfg.run.dry_run)
    from vlm_sweeps.job import run_job  # torch, transformers: seconds, while the tracking process starts

    try:
        result = run_job(cfg, sweep_id=current_sweep_id())
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
