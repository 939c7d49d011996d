"""The analysis report of a sweep, on its parent run when the sweep ends (a Hydra callback).

`conf/config.yaml` lists `analysis.sweep_report.SweepReport` among `hydra.callbacks`, after the
tracking callback: Hydra calls the end of a multirun in reverse order, so the report is logged
while the sweep's parent run is still open and the tracking callback closes it afterwards. The
report covers the sweep's jobs (the signatures of `<sweep dir>/plan.json`: those it trained and
those an earlier sweep had finished), as `python -m analysis --sweep-id ...` would: figures and
tables under the parent run's `analysis/` artifacts, the ranking as its description, the files in
`<sweep dir>/report/`. PNG only (the command line adds PDFs). A sweep of one configuration, a
plan-only or dry sweep, and a non-blocking SLURM submit get none. It is a convenience: the jobs'
results are in their runs, so a failure here is a warning, never a failed sweep.

Only Hydra is imported at module level (Hydra instantiates callbacks on every run).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)

REPORT_FOLDER = "report"


class SweepReport(Callback):
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from vlm_sweeps.tracking import SweepCallback

        if not self.enabled or SweepCallback.tracks_nothing(config):
            return
        if config.hydra.launcher.get("wait", True) is False:
            return  # the jobs are still queued: `python -m analysis --sweep-id` once they end
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            logged = write_and_log(config.tracking.uri, config.tracking.experiment, sweep_dir)
        except Exception as err:  # noqa: BLE001 - a report must never fail a sweep whose jobs finished
            from vlm_sweeps.tracking import error_message

            log.warning("sweep %s: analysis report not logged on the parent run: %s (run `python -m "
                        "analysis --sweep-id %s` for it)", sweep_dir.name, error_message(err), sweep_dir.name)
            return
        if logged:
            log.info("sweep %s: analysis report (%d files) logged on parent run %s; also in %s",
                     sweep_dir.name, len(logged[1]), logged[0], sweep_dir / REPORT_FOLDER)


def signatures(sweep_dir: Path) -> list[str] | None:
    """The signatures of the sweep's planned jobs, or None without a plan."""
    try:
        jobs = json.loads((sweep_dir / "plan.json").read_text())["jobs"]
    except (OSError, ValueError, KeyError):
        return None
    return sorted({j["signature"] for j in jobs if j.get("signature")})


def write_and_log(uri: str | None, experiment: str, sweep_dir: Path) -> tuple[str, list[Path]] | None:
    """Analyse the sweep of `sweep_dir`, write its report there and log it on its parent run:
    (parent run id, files), or None when there is nothing to compare."""
    from analysis import publish, report, store, summary
    from vlm_sweeps.tracking import find_sweep_run, resolve_uri

    uri = resolve_uri(uri)
    client = store.open_store(uri)
    exp = client.get_experiment_by_name(experiment)
    parent = find_sweep_run(client, exp.experiment_id, sweep_dir.name) if exp else None
    if parent is None or parent.info.status != "RUNNING":
        return None
    planned = signatures(sweep_dir)
    results = store.load_store(uri, experiment, None if planned else sweep_dir.name, signatures=planned)
    if len(results.runs["signature"].dropna().unique()) < 2 or not results.axes:
        log.info("sweep %s: one configuration, no comparison to report", sweep_dir.name)
        return None
    analysis = summary.analyze(results)
    files = report.write_report(analysis, sweep_dir / REPORT_FOLDER, ("png",))
    text = (sweep_dir / REPORT_FOLDER / "summary.md").read_text("utf-8")
    publish.log_report(client, parent.info.run_id, files, publish.note(analysis.summary, text, files))
    return parent.info.run_id, files
