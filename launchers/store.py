"""Tracking-store lookups the launcher needs in bulk: the job runs of an experiment, by signature."""

from __future__ import annotations

from typing import Any

from vlm_sweeps import naming

PAGE = 5000


def job_runs(uri: str, experiment: str, finished_only: bool = False) -> dict[str, Any]:
    """{signature: newest job run with it} (FINISHED ones first when several exist)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    query = f"tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'"
    if finished_only:
        query += " and attributes.status = 'FINISHED'"
    runs, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], filter_string=query, max_results=PAGE,
                                  order_by=["attributes.start_time DESC"], page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    found: dict[str, Any] = {}
    for run in runs:  # newest first; a FINISHED run wins over newer unfinished attempts
        sig = run.data.tags.get(naming.TAG_SIGNATURE)
        if sig and (sig not in found or (run.info.status == "FINISHED" and found[sig].info.status != "FINISHED")):
            found[sig] = run
    return found
