"""Put the report where the sweep lives: artifacts and a description on the sweep's parent run.

In the MLflow UI a sweep's parent run then holds its figures and tables (artifact path
`analysis/`) and a description listing the ranking and how to compare its job runs. Job runs
compare well on their own: axes are top-level params and benchmarks `<benchmark>/<metric>`
metrics, which is what the UI's parallel-coordinates view plots. With `log_zscores`, each job run
also gets `analysis/zscore_mean`, so that view can colour by the paper's aggregate.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from analysis.results import AnalysisError, Results
from analysis.stats import ZMEAN
from vlm_sweeps import naming

log = logging.getLogger(__name__)

ARTIFACT_PATH = "analysis"
ZSCORE_METRIC = "analysis/zscore_mean"
NOTE_TAG = "mlflow.note.content"  # shown by the MLflow UI as the run's description
MAX_NOTE = 7000  # MLflow caps tag values at 8000 characters


def find_parent(client: MlflowClient, results: Results, sweep_id: str | None = None) -> str:
    """The one sweep parent run (tag kind=sweep) of the analysed runs; an error names the
    choices when there are several and says why when there is none."""
    parents = []
    for run_id in results.parent_run_ids:
        try:
            tags = client.get_run(run_id).data.tags
        except MlflowException:
            continue  # a parent that was deleted cannot receive the report
        if tags.get(naming.TAG_KIND) == naming.KIND_SWEEP and (
                sweep_id is None or tags.get(naming.TAG_SWEEP_ID) == sweep_id):
            parents.append((run_id, tags.get(naming.TAG_SWEEP_ID, "?")))
    if not parents:
        raise AnalysisError(
            f"--log-to-parent: no sweep parent run (tag {naming.TAG_KIND}={naming.KIND_SWEEP}) "
            "is the parent of the analysed job runs; drop --log-to-parent or choose a sweep "
            "with --sweep-id"
        )
    if len(parents) > 1:
        listed = ", ".join(f"{sid} (run {rid})" for rid, sid in parents)
        raise AnalysisError(f"--log-to-parent: the runs come from {len(parents)} sweeps: {listed}; "
                            "choose one with --sweep-id")
    return parents[0][0]


def note(summary: pd.DataFrame, markdown_table: str, files: list[Path]) -> str:
    """Run description: the ranking, the files, and how to compare the jobs in the UI."""
    text = (f"## Sweep analysis\n\n{len(summary)} configurations ranked by the mean of "
            "per-benchmark z-scores (`zscore_mean`). Figures and tables: artifacts under "
            f"`{ARTIFACT_PATH}/` ({len(files)} files; open `report.html`).\n\n"
            "To compare the job runs: select them, *Compare*, *Parallel Coordinates Plot*, with "
            "the axis params and benchmark metrics.\n\n")
    room = MAX_NOTE - len(text)
    table = markdown_table if len(markdown_table) <= room else (
        markdown_table[:room].rsplit("\n", 1)[0] + "\n\n(truncated: see summary.md)")
    return text + table


def log_report(client: MlflowClient, parent_run_id: str, files: list[Path], description: str,
               ) -> None:
    """Log every report file as an artifact of the parent run and set its description."""
    try:
        for path in files:
            client.log_artifact(parent_run_id, str(path), ARTIFACT_PATH)
        client.set_tag(parent_run_id, NOTE_TAG, description)
    except (MlflowException, OSError) as exc:
        raise AnalysisError(f"the report was written but logging it to run {parent_run_id} "
                            f"failed: {exc}") from exc
    log.info("logged %d files to run %s under %s/", len(files), parent_run_id, ARTIFACT_PATH)


def log_zscores(client: MlflowClient, runs: pd.DataFrame) -> int:
    """Log each run's `zscore_mean` as metric `analysis/zscore_mean` (step 0, overwritten on
    re-analysis: MLflow keeps the latest value at a step). Returns the number of runs."""
    now = int(time.time() * 1000)
    count = 0
    for run_id, value in zip(runs["run"], runs[ZMEAN]):
        if pd.notna(value):
            client.log_batch(run_id, metrics=[Metric(ZSCORE_METRIC, float(value), now, 0)])
            count += 1
    return count
