"""What runs on the node: one frozen job config handed to `vlm_sweeps.job.run_job` (`SweepJob`), or
to `vlm_sweeps.job.run_align` (`AlignJob`: the shared align stage a group of jobs depends on).

Checkpointable (submitit): on preemption or time-out, submitit calls `checkpoint`, requeues the
job with this same object (same frozen config) and exits; the requeued job calls `run_job`
again, which resumes the unfinished MLflow run from the job's last checkpoint. An exception
propagates, so the job exits non-zero and SLURM records it FAILED.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import submitit

log = logging.getLogger(__name__)

# Set in a submitting shell, these would steer every job into one MLflow run or experiment, or
# give it a distributed rank it does not have; a job never takes them from the environment.
LEAKY_ENV = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ACTIVE_MODEL_ID",
             "MLFLOW_TRACKING_URI", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
             "MASTER_PORT")


def scrub_environment(environ: Any = os.environ) -> list[str]:
    """Remove LEAKY_ENV from `environ`; return the names removed."""
    removed = [name for name in LEAKY_ENV if name in environ]
    for name in removed:
        del environ[name]
    return removed


class SweepJob(submitit.helpers.Checkpointable):
    def __init__(self, config: dict, signature: str, sweep_id: str | None) -> None:
        self.config = config  # frozen at submit time (launchers.freeze)
        self.signature = signature
        self.sweep_id = sweep_id
        self.interrupted = False

    def _uri(self) -> str:
        """The tracking URI, its credentials (if any) restored from the environment."""
        from vlm_sweeps.redact import URI_ENV, restore_uri

        try:  # only the variable the launcher sets: MLFLOW_TRACKING_URI of the submitting shell is scrubbed
            return restore_uri(self.config["tracking"]["uri"], os.environ, names=(URI_ENV,))
        except ValueError as err:
            raise ValueError(f"{err}. `hydra/launcher=slurm` sets it in the environment sbatch exports to the "
                             "job; a job submitted with --export=NONE (or $SBATCH_EXPORT) or resubmitted by "
                             "hand does not have it") from None

    def __call__(self) -> dict[str, Any]:
        from omegaconf import OmegaConf

        self.interrupted = False
        _configure_logging()
        _check_code()
        removed = scrub_environment()
        if removed:
            log.info("ignoring %s from the submitting environment", ", ".join(removed))
        # the store the config names (frozen without its credentials: the real URI from the
        # environment sbatch exported, vlm_sweeps/redact.py), also for any library that reads the variable
        uri = self._uri()
        config = {**self.config, "tracking": {**self.config["tracking"], "uri": uri}}
        os.environ["MLFLOW_TRACKING_URI"] = uri
        from vlm_sweeps import tracking_process

        tracking_process.prestart(self.config["tracking"].get("process", True))  # beside the imports below
        from vlm_sweeps.job import run_job
        try:
            result = run_job(OmegaConf.create(config), sweep_id=self.sweep_id)
        except SystemExit:
            if self.interrupted:
                self._mark_requeued()
            raise
        return {"signature": result.signature, "run_id": result.run_id, "skipped": result.skipped,
                "metrics": result.metrics}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit's signal handler before it requeues the job and exits. The training
        loop checkpoints periodically by itself; nothing is written here, because this runs in
        the middle of whatever the job was doing (possibly a store write)."""
        log.warning("job %s interrupted: requeueing; it resumes from its last checkpoint", self.signature)
        self.interrupted = True
        return super().checkpoint(*args, **kwargs)

    def _mark_requeued(self) -> None:
        """After the interruption unwound: the run is waiting for its next attempt, not failed."""
        from mlflow.tracking import MlflowClient

        from vlm_sweeps import naming

        try:
            client = MlflowClient(tracking_uri=self._uri())
            exp = client.get_experiment_by_name(self.config["tracking"]["experiment"])
            runs = client.search_runs([exp.experiment_id], filter_string=(
                f"tags.`{naming.TAG_SIGNATURE}` = '{self.signature}' and "
                f"tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'"),
                order_by=["attributes.start_time DESC"], max_results=1)
            if not runs or runs[0].info.status == "FINISHED":
                return
            run_id = runs[0].info.run_id
            client.set_tag(run_id, naming.TAG_STATUS, "requeued")
            if runs[0].data.tags.get(naming.TAG_ERROR, "").startswith("SystemExit"):
                client.delete_tag(run_id, naming.TAG_ERROR)
            client.update_run(run_id, status="RUNNING")
        except Exception as err:  # the requeue matters more than the tag; never fail it
            log.warning("could not mark the run of %s as requeued: %s", self.signature, err)


class AlignJob(submitit.helpers.Checkpointable):
    """The align job of a group of jobs sharing one align stage: trains it into its shared
    checkpoint (`vlm_sweeps.job.run_align`) and exits; the group's jobs start after it succeeded
    (`afterok`). Requeued on preemption or time-out, it resumes the align from its last checkpoint."""

    def __init__(self, config: dict, align_signature: str) -> None:
        self.config = config  # the frozen config of one of the jobs sharing the align
        self.align_signature = align_signature

    def __call__(self) -> dict[str, str]:
        from omegaconf import OmegaConf

        from vlm_sweeps.job import run_align

        _configure_logging()
        _check_code()
        scrub_environment()
        return run_align(OmegaConf.create(self.config))

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        log.warning("align job %s interrupted: requeueing; it resumes from its last checkpoint", self.align_signature)
        return super().checkpoint(*args, **kwargs)


def _check_code() -> None:
    """Fail unless the job imports its sweep's code snapshot (launchers/snapshot.py); say which code it runs."""
    from vlm_sweeps import code_version

    from launchers import snapshot

    snapshot.check_imports()
    code = code_version.describe()
    log.info("code: commit %s%s, imported from %s", code["commit"],
             " with uncommitted changes" if code["dirty"] else "", code["snapshot"] or code_version.code_root())


def _configure_logging() -> None:
    from vlm_sweeps.redact import install_log_filter

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
                        force=True)
    install_log_filter()  # the job's log (submitit's stderr file) without credentials
