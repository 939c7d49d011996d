"""Read a tracking store into `Results`: FINISHED job runs, their axes and headline metrics.

Only what the jobs wrote is read (see `vlm_sweeps.naming`): the axis params, the seed, the
signature, sweep and study tags, each benchmark's headline metric with the evaluation setting it was
scored under (analysis/settings.py), and what floors a benchmark (its blind control
`blind/<benchmark>/<metric>`, its `<benchmark>/chance`: analysis/floors.py).
The flattened config (dotted params), training curves, timings and run facts such as
`visual_tokens` are not benchmarks and are ignored.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException

from analysis import sections, settings
from analysis.floors import BLIND_COLUMN, CHANCE_COLUMN
from analysis.results import AnalysisError, Results
from vlm_sweeps import naming, tracking

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
# metric prefixes that are not benchmarks (blind/ is read as a floor, below)
NOT_BENCHMARKS = ("train", "analysis", "system", "time", "lmms", naming.VISUAL_TOKENS,
                  naming.BLIND_PREFIX.rstrip("/"))
STUDY_COLUMNS = {"study": naming.TAG_STUDY, "experiment": naming.TAG_EXPERIMENT,
                 "section": naming.TAG_SECTION}
_PAGE = 1000


def open_store(tracking_uri: str | None) -> MlflowClient:
    """A client for `tracking_uri` (default: MLFLOW_TRACKING_URI / MLflow's default).

    A missing local store is an error, not an invitation to create an empty one.
    """
    uri = tracking_uri or mlflow.get_tracking_uri()
    parsed = urlparse(uri)
    local = None
    if parsed.scheme == "sqlite":
        local = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
    elif parsed.scheme == "file" or (parsed.scheme == "" and not uri.startswith("databricks")):
        local = Path(parsed.path if parsed.scheme == "file" else uri)
    if local is not None and not local.exists():
        raise AnalysisError(
            f"no MLflow store at {local} (tracking URI {uri!r}); pass --tracking-uri with the "
            "store the jobs logged to, e.g. sqlite:///path/to/mlflow.db, or set MLFLOW_TRACKING_URI"
        )
    try:
        tracking.probe(uri)
    except tracking.StoreUnusable as err:
        raise AnalysisError(str(err).replace("; nothing was trained or logged", "")) from None
    return tracking.mlflow_client(uri)


def _experiment_ids(client: MlflowClient, names: list[str]) -> list[str]:
    try:
        found = {name: client.get_experiment_by_name(name) for name in names}
    except MlflowException as exc:
        raise AnalysisError(f"cannot read the tracking store {client.tracking_uri}: {exc}") from exc
    unknown = [n for n, e in found.items() if e is None]
    if unknown:
        known = sorted(e.name for e in client.search_experiments(view_type=ViewType.ALL))
        raise AnalysisError(
            f"unknown experiment {', '.join(map(repr, unknown))} in {client.tracking_uri}; "
            f"experiments there: {', '.join(known) or '(none)'}; choose one with --experiment"
        )
    return [e.experiment_id for e in found.values()]


def sweep_scope(tracking_uri: str | None, experiments: list[str] | str, sweep_id: str | None = None
                ) -> tuple[str, list[str] | None] | None:
    """The sweep a default analysis reads: `sweep_id`, or the one whose parent run started last;
    returned with the signatures of all its jobs (its comparison table: those it trained and those
    an earlier sweep had finished), or None for them when the parent has no table (then its runs
    are those tagged with its id). None when the store holds no sweep (single runs only)."""
    import tempfile

    client = open_store(tracking_uri)
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    query = f"tags.`{naming.TAG_KIND}` = '{naming.KIND_SWEEP}'"
    if sweep_id:
        query += f" and tags.`{naming.TAG_SWEEP_ID}` = '{sweep_id}'"
    parents = client.search_runs(_experiment_ids(client, names), query, ViewType.ACTIVE_ONLY, 1,
                                 order_by=["attributes.start_time DESC"])
    if not parents:
        return (sweep_id, None) if sweep_id else None
    parent = parents[0]
    chosen = parent.data.tags.get(naming.TAG_SWEEP_ID, sweep_id or "?")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            table = json.loads(Path(client.download_artifacts(parent.info.run_id, "comparison.json", tmp)).read_text())
            column = table["columns"].index("signature")
            signatures = [row[column] for row in table["data"] if row[column]]
        except Exception:  # noqa: BLE001 - no table (a sweep still running, another sweeper): its tagged runs
            signatures = None
    return chosen, signatures


def _search(client: MlflowClient, ids: list[str], query: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(ids, query, ViewType.ACTIVE_ONLY, _PAGE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _row(run: Run) -> dict:
    params, tags = run.data.params, run.data.tags
    row = {
        "run": run.info.run_id,
        "end_time": run.info.end_time or 0,
        "signature": tags.get(naming.TAG_SIGNATURE),
        "sweep_id": tags.get(naming.TAG_SWEEP_ID),
        "parent_run_id": tags.get(PARENT_TAG),
        "run_name": run.info.run_name,
    }
    for column, tag in STUDY_COLUMNS.items():
        row[column] = tags.get(tag)
    for key in (*naming.design_axes(), *naming.context_params()):
        row[key] = params.get(key)
    # when each latest metric value was logged (MLflow keeps the Metric objects only privately; none: no check)
    stamps = {m.key: m.timestamp for m in getattr(run.data, "_metric_objs", [])}
    for key, value in run.data.metrics.items():
        bench, _, metric = key.partition("/")
        if bench in NOT_BENCHMARKS:
            if key.startswith(naming.BLIND_PREFIX):  # blind/<benchmark>/<metric>: the control
                blind = key[len(naming.BLIND_PREFIX):]
                if blind == naming.headline_metric(blind.partition("/")[0]):
                    row[BLIND_COLUMN + blind.partition("/")[0]] = value * 100.0
            continue
        if key == naming.headline_metric(bench):
            row["bench:" + bench] = value
            row[settings.SETTING_COLUMN + bench] = json.dumps(settings.of_run(
                run.data.metrics, stamps, tags, params, run.info.end_time or 0, bench), sort_keys=True)
        elif metric == "chance":
            row[CHANCE_COLUMN + bench] = value * 100.0
    return row


def load_store(
    tracking_uri: str | None = None,
    experiments: list[str] | str = naming.DEFAULT_EXPERIMENT,
    sweep_id: str | None = None,
    axes: list[str] | None = None,
    filter_string: str = "",
    signatures: list[str] | None = None,
    mixed_settings: str = "refuse",
) -> Results:
    """FINISHED job runs of `experiments` (optionally one sweep, or the runs of these `signatures`:
    a sweep's jobs, those it trained and those an earlier sweep had finished) as `Results`.

    A benchmark whose runs were scored under different evaluation settings (another slim size,
    version, blind or generation setting: analysis/settings.py) is refused with the runs of each
    setting (`mixed_settings="refuse"`) or split into one benchmark per setting ("split").

    `axes` restricts the compared axes (default: every design axis of `naming.AXIS_TABLE` with more than one
    value). Runs sharing a signature are one configuration run twice: the latest is kept.
    """
    if mixed_settings not in settings.MODES:  # before the store is read
        raise AnalysisError(f"--mixed-settings {mixed_settings!r}: choose one of {', '.join(settings.MODES)}")
    client = open_store(tracking_uri)
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    ids = _experiment_ids(client, names)
    query = f"tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'"
    if sweep_id:
        query += f" and tags.`{naming.TAG_SWEEP_ID}` = '{sweep_id}'"
    if filter_string:
        query += f" and {filter_string}"
    where = f"experiment {', '.join(names)} of {client.tracking_uri}"
    try:
        finished = _search(client, ids, query + " and attributes.status = 'FINISHED'")
    except MlflowException as exc:
        raise AnalysisError(f"cannot search {where} (check --filter): {exc}") from exc
    if signatures is not None:
        wanted = set(signatures)
        finished = [r for r in finished if r.data.tags.get(naming.TAG_SIGNATURE) in wanted]
    if not finished:
        others = _search(client, ids, query)
        states = pd.Series([r.info.status for r in others]).value_counts().to_dict()
        detail = f"job runs there: {states}" if states else "it holds no job runs"
        scope = f" with sweep id {sweep_id!r}" if sweep_id else ""
        raise AnalysisError(
            f"no FINISHED job runs (tag {naming.TAG_KIND}={naming.KIND_JOB}){scope} in {where}; "
            f"{detail}. Run a sweep first, or choose another --experiment/--sweep-id"
        )
    frame = pd.DataFrame([_row(r) for r in finished])
    return _results(frame, axes, f"{where}" + (f", sweep {sweep_id}" if sweep_id else ""), mixed_settings)


def _results(frame: pd.DataFrame, axes: list[str] | None, source: str, mixed_settings: str = "refuse"
             ) -> Results:
    signed = frame["signature"].notna()
    latest = frame[signed].sort_values("end_time").drop_duplicates("signature", keep="last")
    dropped = int(signed.sum()) - len(latest)
    if dropped:
        log.info("kept the latest of runs sharing a signature: %d duplicates dropped", dropped)
    frame = pd.concat([latest, frame[~signed]]).sort_values("end_time").reset_index(drop=True)

    bench_cols = [c for c in frame if c.startswith("bench:") and frame[c].notna().any()]
    if not bench_cols:
        raise AnalysisError(
            f"the FINISHED job runs in {source} log no benchmark headline metric "
            f"(expected e.g. {naming.headline_metric('synth_vqa')}); were they evaluated?"
        )
    benchmarks = [c.removeprefix("bench:") for c in bench_cols]
    frame = frame.rename(columns=dict(zip(bench_cols, benchmarks)))
    frame[benchmarks] = frame[benchmarks].astype(float) * 100.0  # fractions -> percent
    frame, benchmarks, eval_settings, notes = settings.check(frame, benchmarks, mixed_settings)
    for note in notes:
        log.warning("%s", note)
    floors_of = [c for c in frame if c.startswith((BLIND_COLUMN, CHANCE_COLUMN))
                 and c.partition(":")[2] not in benchmarks]
    frame = frame.drop(columns=floors_of)  # floors of benchmarks no finished run scores

    known = [k for k in (*naming.design_axes(), "scale") if frame[k].notna().any()]
    for key in known:
        frame[key] = frame[key].fillna("<unset>").astype(str)
    varying = [k for k in naming.design_axes() if k in known and frame[k].nunique() > 1]
    if axes:
        unknown = [a for a in axes if a not in naming.design_axes()]
        if unknown:
            raise AnalysisError(f"--by {unknown}: not an axis; axes are {', '.join(naming.design_axes())}")
        for axis in axes:
            if axis not in varying:
                log.warning("axis %r has a single value in %s: nothing to compare", axis, source)
        varying = [a for a in axes if a in varying]
    context = [k for k in known if k not in varying]
    constants = {k: frame[k].iloc[0] for k in known if frame[k].nunique() == 1}
    seed = "seed" if frame["seed"].notna().any() else None
    if seed:
        frame["seed"] = frame["seed"].fillna("<unset>").astype(str)
    parents = sorted(p for p in frame["parent_run_id"].dropna().unique())
    # a study's or an ablation's baseline run (sections.tagged_baseline) gives each axis its baseline option
    base = frame[sections.tagged_baseline(frame)]
    order = {a: list(dict.fromkeys(base[a])) for a in varying}
    return Results(
        option_order=order,
        runs=frame,
        axes=varying,
        benchmarks=benchmarks,
        context=context,
        seed=seed,
        label=None,
        constants=constants,
        metric_names={b: naming.headline_metric(b.partition(" [")[0]) for b in benchmarks},
        eval_settings=eval_settings,
        setting_notes=notes,
        source=f"MLflow store: {source} ({len(frame)} FINISHED job runs)",
        parent_run_ids=parents,
    )


def default_tracking_uri() -> str:
    """What a bare `python -m analysis` reads: MLFLOW_TRACKING_URI, else MLflow's default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()
