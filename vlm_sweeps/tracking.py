"""MLflow tracking: one run per job, found again by its signature; one parent run per sweep.

Store: `tracking.uri`, else $MLFLOW_TRACKING_URI, else `sqlite:///<working dir>/mlflow.db`.
The schema and experiment are created once by `SweepCallback` before a sweep's jobs start, so
parallel jobs never race on a fresh sqlite store's migration.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from vlm_sweeps import code_version, naming
from vlm_sweeps.redact import redact_text, redact_tree, redact_uri

log = logging.getLogger(__name__)


def resolve_uri(uri: str | None) -> str:
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


# What a job's writes to a tracking server may cost before the job gives up on the store: MLflow
# retries a failed HTTP request MLFLOW_HTTP_REQUEST_MAX_RETRIES times with a backoff of FACTOR * 2^n s
# (defaults 7 and 2: 4 min 19 s per write, hours for a job's queued writes when the server is gone),
# each try waiting MLFLOW_HTTP_REQUEST_TIMEOUT s. A job sets them from tracking.write_retries and
# tracking.write_timeout_s (http_environment), and fails at its first lost write (tracking_process.py).
RETRIES_ENV, BACKOFF_ENV, TIMEOUT_ENV = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                                         "MLFLOW_HTTP_REQUEST_TIMEOUT")
USERNAME_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
PROBE_TIMEOUT_S = 5.0
MAX_DIFF_CHARS = 5_000_000  # of a run's code/diff.patch (a dirty tree of data files would be cut there)  # a tracking server that does not answer /health within this is unreachable


class StoreUnusable(RuntimeError):
    """The tracking store cannot be used (a server that does not answer, a file that is not a
    database): said before a run is opened, in one line."""


def http_environment(retries: int, timeout_s: float) -> dict[str, str]:
    """The MLflow variables that bound one HTTP write (see RETRIES_ENV): `retries` retries, 1, 2, 4 ... s
    apart, `timeout_s` each."""
    return {RETRIES_ENV: str(int(retries)), BACKOFF_ENV: "1", TIMEOUT_ENV: str(max(1, round(timeout_s)))}


def plain_uri(uri: str) -> str:
    """`uri` without credentials, which go to MLflow through its environment variables instead
    (MLFLOW_TRACKING_USERNAME / _PASSWORD, set here for this process and its children): a URI that
    MLflow (its "View run ... at: URL" lines), a library or a traceback prints then holds none. The
    userinfo of a database URI (postgresql://user:pw@db/x) is the database's login: kept."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return uri
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    os.environ[USERNAME_ENV] = unquote(user)
    if password:
        os.environ[PASSWORD_ENV] = unquote(password)
    return urlunsplit(parts._replace(netloc=host))


def mlflow_client(uri: str):
    """An MlflowClient of `uri`, its credentials passed through the environment (plain_uri)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=plain_uri(uri))



def probe(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise StoreUnusable, saying what to do, unless the store of `uri` can be used: a tracking
    server (http, https) answers its /health within `timeout_s` (two tries); a sqlite file that
    exists is a SQLite database (a missing one is created). Other stores are not probed."""
    import urllib.error
    import urllib.request

    database = sqlite_file(uri)
    if database is not None:
        try:
            with open(database, "rb") as f:
                header = f.read(16)
        except FileNotFoundError:
            return
        except OSError as err:
            raise StoreUnusable(f"the tracking store {database} cannot be read ({err})") from None
        if header and header != b"SQLite format 3\x00":
            raise StoreUnusable(
                f"the tracking store {database} is not an SQLite database (corrupted, or another file): move it "
                "aside and re-run (a new store is created; the runs' checkpoints are kept and set aside), or point "
                "tracking.uri at the right store; nothing was trained or logged")
        return
    base = plain_uri(uri)
    if not base.startswith(("http://", "https://")):
        return
    reason = ""
    for attempt in range(2):
        try:
            with urllib.request.urlopen(base.rstrip("/") + "/health", timeout=timeout_s / 2):
                return
        except urllib.error.HTTPError:  # it answers (behind a proxy or an auth layer): reachable
            return
        except (OSError, ValueError) as err:
            reason = str(getattr(err, "reason", err))
            time.sleep(0.5 * (attempt + 1))
    raise StoreUnusable(
        f"the tracking server {redact_uri(uri)} does not answer ({reason}): start it (`mlflow server --host HOST "
        "--port PORT --backend-store-uri sqlite:///mlflow.db`), or point tracking.uri (or $MLFLOW_TRACKING_URI) at "
        "a running one, or use tracking=local; nothing was trained or logged")


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite URI (None for other stores and in-memory databases)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return None
    return Path(uri[len(prefix):].split("?", 1)[0])


def ensure_experiment(uri: str, name: str) -> str:
    """Create the store's schema (first client on a sqlite file) and the experiment; return its id.
    On a sqlite file this runs under a lock beside it: MLflow's schema migration is not safe
    against another process migrating the same fresh file at once ("duplicate column name"), and
    any first job, not only a sweep's callback, may be the one that creates it.
    Artifacts of a sqlite store go beside the database, not into whatever the working dir is."""
    from vlm_sweeps import locks

    database = sqlite_file(uri)
    if database is None:
        return _ensure_experiment(uri, name)
    database = database.resolve()
    with locks.exclusive(database.with_name(database.name + ".lock"), f"schema of {database}"):
        return _ensure_experiment(uri, name, (database.parent / "mlartifacts").as_uri())


def _ensure_experiment(uri: str, name: str, location: str | None = None) -> str:
    from mlflow.exceptions import MlflowException

    client = mlflow_client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        # a model-training experiment: MLflow's UI opens it on its runs table, not the GenAI view
        return client.create_experiment(name, artifact_location=location,
                                        tags={"mlflow.experimentKind": "custom_model_development"})
    except MlflowException:  # created meanwhile by another process (a server's store)
        return client.get_experiment_by_name(name).experiment_id


def find_sweep_run(client, experiment_id: str, sweep_id: str):
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.`{naming.TAG_KIND}` = '{naming.KIND_SWEEP}' and tags.`{naming.TAG_SWEEP_ID}` = '{sweep_id}'"),
        max_results=1)
    return runs[0] if runs else None


def start_sweep_run(uri: str, experiment: str, sweep_id: str, overrides: list[str],
                    tags: dict[str, str] | None = None) -> str:
    """The parent run that groups a sweep's jobs in the MLflow UI (created once per sweep). The
    experiment is tagged as a model-training one (`mlflow.experimentKind`): MLflow 3's UI opens an
    untagged experiment in its GenAI view, a tagged one on its runs table."""
    probe(uri)
    exp_id = ensure_experiment(uri, experiment)
    client = mlflow_client(uri)
    kind_tag, kind = "mlflow.experimentKind", "custom_model_development"
    if client.get_experiment(exp_id).tags.get(kind_tag) != kind:
        client.set_experiment_tag(exp_id, kind_tag, kind)
    existing = find_sweep_run(client, exp_id, sweep_id)
    if existing is not None:
        return existing.info.run_id
    run = client.create_run(exp_id, run_name=f"sweep {sweep_id}", tags={
        naming.TAG_KIND: naming.KIND_SWEEP, naming.TAG_SWEEP_ID: sweep_id,
        naming.TAG_PREFIX + "overrides": redact_text(" ".join(overrides))[:5000], **(tags or {})})
    return run.info.run_id


UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default


def ui_links(uri: str, experiment_id: str, parent_id: str, job_ids: list[str]) -> str:
    """Where a sweep's results are in MLflow's UI: its parent run (the comparison table, the analysis
    report) and a compare view of all its jobs (those an earlier sweep had trained too), on the
    tracking server of `uri`, or, for a local store, after the `mlflow ui` command printed first."""
    from urllib.parse import quote

    base = plain_uri(uri).rstrip("/")
    lines = []
    if not base.startswith(("http://", "https://")):
        database = sqlite_file(uri)
        store = f"sqlite:///{database}" if database is not None else redact_uri(uri)
        lines.append(f"see it in MLflow: mlflow ui --backend-store-uri {store}, then open")
        base = UI_ADDRESS
    lines.append(f"  the sweep's parent run: {base}/#/experiments/{experiment_id}/runs/{parent_id}")
    if job_ids:
        runs = quote(json.dumps(job_ids, separators=(",", ":")))
        experiments = quote(json.dumps([str(experiment_id)], separators=(",", ":")))
        lines.append(f"  its {len(job_ids)} jobs compared: {base}/#/compare-runs?runs={runs}&experiments={experiments}")
    return "\n".join(lines)


def close_dead_sweeps(client: Any, experiment: str) -> list[str]:
    """Parent runs of sweeps whose process on this host is gone (a killed local sweep: no exit hook
    ran) but which are still RUNNING: FAILED, saying so. Returns their ids. Non-blocking submits
    (hydra.launcher.wait=false) record no process: their parent stays open for their jobs."""
    from vlm_sweeps.locks import pid_alive

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    host, closed = socket.gethostname(), []
    for run in client.search_runs([exp.experiment_id], filter_string=(
            f"tags.`{naming.TAG_KIND}` = '{naming.KIND_SWEEP}' and tags.`{naming.TAG_HOST}` = '{host}' and "
            "attributes.status = 'RUNNING'")):
        pid = run.data.tags.get(naming.TAG_PID, "")
        if pid.isdigit() and not pid_alive(int(pid)):
            client.set_tag(run.info.run_id, naming.TAG_STATUS, "failed")
            client.set_tag(run.info.run_id, naming.TAG_ERROR, f"the sweep's process {pid} on {host} was killed")
            client.set_terminated(run.info.run_id, "FAILED")
            closed.append(run.info.run_id)
    return closed


class SweepCallback(Callback):
    """Hydra callback: before a multirun's jobs start, create the store, experiment and parent run;
    at its end (when the launcher waited for the jobs), log the sweep's comparison table on the
    parent run (`comparison.json`: one row per job, its axes, status and headline metrics) and
    close it. A plan-only sweep (hydra.sweeper.dry) or a dry run (run.dry_run) tracks nothing."""

    COMPARISON_TABLE = "comparison.json"  # artifact of a sweep's parent run (mlflow.log_table)
    PLAN_FILE = "plan.json"  # <sweep dir>/plan.json, written by hydra/sweeper=ablation (and grid, basic)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        if self.tracks_nothing(config):
            return
        uri = resolve_uri(config.tracking.uri)
        sweep_id = Path(config.hydra.sweep.dir).name
        overrides = list(config.hydra.overrides.task)
        study = config.get("study") or {}
        tags = {naming.TAG_STUDY: str(study.get("name"))} if study.get("name") else {}
        waits = config.hydra.launcher.get("wait", True) is not False
        if waits:  # this process ends the sweep: its parent run says which process holds it
            tags.update({naming.TAG_HOST: socket.gethostname(), naming.TAG_PID: str(os.getpid())})
        run_id = start_sweep_run(uri, config.tracking.experiment, sweep_id, overrides, tags)
        log.info("sweep %s: tracking in %s (parent run %s)", sweep_id, redact_uri(uri), run_id)
        if waits:
            self._unended = (uri, run_id)
            atexit.register(self._close_unended)
        with contextlib.suppress(Exception):  # a convenience: the sweep goes on without it
            close_dead_sweeps(mlflow_client(uri), config.tracking.experiment)

    def _close_unended(self) -> None:
        """At exit, a sweep whose end Hydra never reached (a typo in an override, Ctrl-C, an error of
        a job under the basic launcher): its parent run FAILED, saying so, not RUNNING forever."""
        unended, self._unended = getattr(self, "_unended", None), None
        if unended is None:
            return
        uri, run_id = unended
        with contextlib.suppress(Exception):
            client = mlflow_client(uri)
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_tag(run_id, naming.TAG_STATUS, "failed")
                client.set_tag(run_id, naming.TAG_ERROR, "the sweep command ended before the sweep did (an error "
                                                         "before or while launching its jobs, or an interruption); "
                                                         "each job's run says how far it got")
                client.set_terminated(run_id, "FAILED")

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._unended = None
        if self.tracks_nothing(config):
            return
        if config.hydra.launcher.get("wait", True) is False:
            return  # a non-blocking submit: the sweep's jobs are still queued, its run stays open
        uri = resolve_uri(config.tracking.uri)
        client = mlflow_client(uri)
        exp = client.get_experiment_by_name(config.tracking.experiment)
        sweep_dir = Path(config.hydra.sweep.dir)
        parent = find_sweep_run(client, exp.experiment_id, sweep_dir.name) if exp else None
        if parent is not None and parent.info.status == "RUNNING" and not self._did_any(client, exp.experiment_id,
                                                                                        sweep_dir.name):
            # every job was FINISHED and evaluated before (all skipped): a parent of nothing done would
            # only add a row; the sweep that trained them holds their comparison
            client.delete_run(parent.info.run_id)
            log.info("sweep %s: every job was done before; no parent run kept", sweep_dir.name)
            return
        if parent is not None and parent.info.status == "RUNNING":
            rows: list[dict] = []
            try:
                rows = self.comparison_rows(client, exp.experiment_id, sweep_dir)
                if rows:
                    client.log_table(parent.info.run_id, self.columns(rows), self.COMPARISON_TABLE)
                    log.info("sweep %s: comparison of %d jobs logged on parent run %s (%s)", sweep_dir.name,
                             len(rows), parent.info.run_id, self.COMPARISON_TABLE)
            except Exception as err:  # the jobs' results are in their runs; the summary is a convenience
                log.warning("sweep %s: comparison table not logged: %s", sweep_dir.name, error_message(err))
            client.set_terminated(parent.info.run_id, "FINISHED")
            print(ui_links(uri, exp.experiment_id, parent.info.run_id, [r["run_id"] for r in rows if r["run_id"]]))

    @staticmethod
    def _did_any(client: Any, experiment_id: str, sweep_id: str) -> bool:
        """Whether a job of this sweep trained (its run opened or reopened here) or evaluated (a FINISHED
        run's lacking benchmarks) anything."""
        return any(client.search_runs([experiment_id], filter_string=(
            f"tags.`{tag}` = '{sweep_id}' and tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'"), max_results=1)
            for tag in (naming.TAG_SWEEP_ID, naming.TAG_EVALUATED_IN_SWEEP))

    @staticmethod
    def tracks_nothing(config: Any) -> bool:
        sweeper = config.hydra.get("sweeper") or {}
        return bool(sweeper.get("dry", False)) or bool((config.get("run") or {}).get("dry_run", False))

    @classmethod
    def comparison_rows(cls, client: Any, experiment_id: str, sweep_dir: Path) -> list[dict]:
        """One row per job of the sweep: its number, the study's experiment id and section (from the
        sweep's plan: also right for a job that reused a run another sweep trained), the run, the
        design axes (naming.AXIS_TABLE) and seed, the status and the headline metric of each
        benchmark present (naming.headline_metric). Without a plan (another sweeper): the runs
        tagged with the sweep id."""
        try:
            planned = json.loads((sweep_dir / cls.PLAN_FILE).read_text())["jobs"]
        except (OSError, ValueError, KeyError):
            planned = None
        if planned is None:
            runs = client.search_runs([experiment_id], filter_string=(
                f"tags.`{naming.TAG_SWEEP_ID}` = '{sweep_dir.name}' and "
                f"tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'"))
            jobs = [({}, run) for run in runs]
        else:
            jobs = []
            for job in planned:
                if job.get("num") is None:
                    continue  # a duplicate of another job: that job's row is its row
                found = client.search_runs([experiment_id], filter_string=(
                    f"tags.`{naming.TAG_SIGNATURE}` = '{job['signature']}' and tags.`{naming.TAG_KIND}` = "
                    f"'{naming.KIND_JOB}'"), order_by=["attributes.start_time DESC"])
                run = next((r for r in found if r.info.status == "FINISHED"), found[0] if found else None)
                jobs.append((job, run))
        rows = []
        for job, run in jobs:
            params = run.data.params if run is not None else {}
            metrics = run.data.metrics if run is not None else {}
            tags = run.data.tags if run is not None else {}
            axes = job.get("axes") or {}
            row: dict[str, Any] = {"job": job.get("num"),
                                   "experiment": job.get("label") or tags.get(naming.TAG_EXPERIMENT),
                                   "section": job.get("section") or tags.get(naming.TAG_SECTION),
                                   "run_id": run.info.run_id if run is not None else None}
            for axis in (*naming.design_axes(), "seed"):
                row[axis] = axes.get(axis, params.get(axis))
            row["status"] = run.info.status if run is not None else "NOT RUN"
            row["signature"] = job.get("signature") or tags.get(naming.TAG_SIGNATURE)
            for key in sorted(metrics):
                if key.count("/") == 1 and key == naming.headline_metric(key.split("/", 1)[0]):
                    row[key] = metrics[key]
            rows.append(row)
        return rows

    @staticmethod
    def columns(rows: list[dict]) -> dict[str, list]:
        """Rows as the columns mlflow.log_table takes; a metric a job lacks is None in its row.
        Columns with no value in any row (no study: experiment, section) are left out."""
        keys = list(dict.fromkeys(k for row in rows for k in row))
        keys = [k for k in keys if any(row.get(k) is not None for row in rows)]
        return {k: [row.get(k) for row in rows] for k in keys}


def final_step(client: Any, run: Any) -> int:
    """A run's optimizer steps: its total steps tag (naming.TAG_TOTAL_STEPS), else the step of its
    last training-curve point (the last step is always logged); 0 when it records neither."""
    total = int(run.data.tags.get(naming.TAG_TOTAL_STEPS, 0) or 0)
    if total:
        return total
    return max((int(m.step) for m in client.get_metric_history(run.info.run_id, naming.TRAIN_LOSS)), default=0)


class JobTracker:
    """The MLflow side of one job. What the job asks of it is plain data (ids, dicts, strings), so
    that it can run in a process of its own (tracking_process.py)."""

    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        probe(uri)
        self.experiment_id = ensure_experiment(uri, experiment)  # first: a fresh store's schema, under its lock
        self.client = mlflow_client(uri)
        self.run_id: str | None = None
        # a reopened run's steps already in the store, by metric (read on first use): a resume logs
        # each point once, and again those a lost write left out
        self.logged: dict[str, set[int]] | None = None

    def find(self, signature: str) -> list:
        """Job runs with this signature, newest first."""
        return self.client.search_runs([self.experiment_id], filter_string=(
            f"tags.`{naming.TAG_SIGNATURE}` = '{signature}' and tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'"),
            order_by=["attributes.start_time DESC"])

    def finished(self, signature: str):
        return next((r for r in self.find(signature) if r.info.status == "FINISHED"), None)

    def finished_run(self, signature: str) -> tuple[str, dict[str, float]] | None:
        """(run id, metrics) of the FINISHED run with this signature, if any."""
        done = self.finished(signature)
        return None if done is None else (done.info.run_id, dict(done.data.metrics))

    def finished_record(self, signature: str) -> dict | None:
        """The FINISHED run with this signature, as plain data: its id, metrics, the tags and params
        that say what it was evaluated on (eval/pending.py), its optimizer steps."""
        done = self.finished(signature)
        if done is None:
            return None
        tags = {k: v for k, v in done.data.tags.items() if k.startswith(naming.TAG_EVALUATED)}
        params = {k: v for k, v in done.data.params.items() if k.startswith("benchmarks.")}
        return {"run_id": done.info.run_id, "metrics": dict(done.data.metrics), "tags": tags, "params": params,
                "steps": final_step(self.client, done)}

    def attach(self, run_id: str) -> str:
        """Log into an existing run (a FINISHED one getting more evaluations) without reopening it."""
        self.run_id = run_id
        return run_id

    def unfinished(self, signature: str) -> set[str]:
        """Ids of this signature's runs that did not finish (a checkpoint of one resumes it)."""
        return {r.info.run_id for r in self.find(signature) if r.info.status != "FINISHED"}

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def start(self, signature: str, resolved: dict, axes: dict[str, str], sweep_id: str | None,
              run_name: str, extra_tags: dict[str, str] | None = None) -> str:
        from mlflow.entities import Param

        from vlm_sweeps.identity import flatten

        tags = {naming.TAG_SIGNATURE: signature, naming.TAG_KIND: naming.KIND_JOB, naming.TAG_STATUS: "running"}
        if sweep_id:
            tags[naming.TAG_SWEEP_ID] = sweep_id
            parent = find_sweep_run(self.client, self.experiment_id, sweep_id)
            if parent is not None:
                tags["mlflow.parentRunId"] = parent.info.run_id
        code = code_version.describe()  # the code this process imports: its sweep's snapshot, or the repository
        if code["commit"]:
            tags[naming.TAG_GIT_COMMIT] = code["commit"]
        tags[naming.TAG_GIT_DIRTY] = str(bool(code["dirty"])).lower()
        if code["snapshot"]:
            tags[naming.TAG_CODE_SNAPSHOT] = code["snapshot"]
        tags.update(extra_tags or {})
        # an older unfinished attempt (crashed, killed) is closed as superseded, not left RUNNING
        for old in self.find(signature):
            if old.info.status == "RUNNING":
                self.client.set_tag(old.info.run_id, naming.TAG_STATUS, "superseded")
                self.client.set_terminated(old.info.run_id, "KILLED")
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id
        with self._failing_on_error("start"):
            self._tag_slurm()
            resolved = redact_tree(resolved)  # no credential of a tracking URI (or any other) in the store
            params = {**axes, **{k: v for k, v in flatten(resolved).items() if k not in axes}}
            items = [Param(k, _param_value(v)) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i:i + 100])
            self.log_text(_yaml(resolved), "config.yaml")
            if code["diff"]:
                diff = redact_text(code["diff"])
                if len(diff) > MAX_DIFF_CHARS:
                    diff = diff[:MAX_DIFF_CHARS] + f"\n# ... cut at {MAX_DIFF_CHARS} of {len(diff)} characters\n"
                self.log_text(diff, naming.CODE_DIFF)
        return self.run_id

    @contextlib.contextmanager
    def _failing_on_error(self, what: str):
        """A run that exists but could not be set up is marked FAILED, not left RUNNING."""
        try:
            yield
        except BaseException as err:
            with contextlib.suppress(Exception):
                self.fail(f"{what} of the run failed: {error_message(err)}")
            raise

    def reopen(self, run_id: str, sweep_id: str | None) -> str:
        """Continue an interrupted run (requeued or restarted job) instead of starting another.
        Metric points already logged are not logged twice (the training steps replayed between the
        last checkpoint and the interruption, an evaluation logged before it); those missing are
        (the curve's points come back from the checkpoint, train/runner.py)."""
        self.run_id = run_id
        self.client.update_run(run_id, status="RUNNING")
        with self._failing_on_error("reopening"):
            self.client.set_tag(run_id, naming.TAG_STATUS, "running")
            if naming.TAG_ERROR in self.client.get_run(run_id).data.tags:  # the failure it recovers from
                self.client.delete_tag(run_id, naming.TAG_ERROR)
            self.logged = {}
            self._tag_slurm()
            resumes = int(self.client.get_run(run_id).data.tags.get(naming.TAG_PREFIX + "resumes", "0")) + 1
            self.client.set_tag(run_id, naming.TAG_PREFIX + "resumes", str(resumes))
        return run_id

    def set_tags(self, tags: dict[str, str]) -> None:
        """Several tags in one write."""
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def _tag_slurm(self) -> None:
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job_id = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ.get("SLURM_JOB_ID")
        if job_id:
            self.client.set_tag(self.run_id, naming.TAG_SLURM_JOB_ID, job_id)

    def log_curve(self, metrics: dict[str, float], step: int) -> None:
        """Training-curve points (log_metrics)."""
        self.log_metrics(metrics, step)

    def tag_align(self, align_signature: str, source: str) -> None:
        """Which align checkpoint the run's align stage is, and whether it was trained here or reused."""
        self.client.set_tag(self.run_id, naming.TAG_ALIGN_SIGNATURE, align_signature)
        self.client.set_tag(self.run_id, naming.TAG_ALIGN_SOURCE, source)

    def interrupted(self) -> None:
        """Preemption or requeue: the run stays RUNNING; its checkpoint resumes it."""
        self.client.set_tag(self.run_id, naming.TAG_STATUS, "interrupted")

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """Metric points at `step`; in a reopened run, not those already in the store at that step."""
        from mlflow.entities import Metric

        if self.logged is not None:
            metrics = {k: v for k, v in metrics.items() if self._first_at(k, step)}
            if not metrics:
                return
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def _first_at(self, key: str, step: int) -> bool:
        """Whether the reopened run lacks a point of `key` at `step` (which it then counts as logged)."""
        steps = self.logged.get(key)
        if steps is None:
            steps = self.logged[key] = {int(m.step) for m in self.client.get_metric_history(self.run_id, key)}
        fresh = step not in steps
        steps.add(step)
        return fresh

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_records(self, records: list[dict], artifact_file: str) -> None:
        self.log_text("\n".join(json.dumps(r) for r in records) + "\n", artifact_file)

    def finish(self) -> None:
        self.client.set_tag(self.run_id, naming.TAG_STATUS, "finished")
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, error: BaseException | str) -> None:
        message = redact_text(error if isinstance(error, str) else error_message(error))
        self.client.set_tag(self.run_id, naming.TAG_STATUS, "failed")
        self.client.set_tag(self.run_id, naming.TAG_ERROR, message[:5000])
        self.client.set_terminated(self.run_id, "FAILED")


class Heartbeat:
    """While a job holds its run: the run's host, pid and resume command, and TAG_HEARTBEAT
    rewritten every `every` seconds from a daemon thread, so that any reader of the store tells a
    dead RUNNING run (SIGKILL, OOM, a lost node: no handler runs) from a live one
    (vlm_sweeps/liveness.py, `python -m launchers status`). `tracker` is a JobTracker or its
    RemoteTracker (whose tag writes do not wait for the store)."""

    def __init__(self, tracker: Any, every: float, command: str | None = None):
        self.tracker, self.every = tracker, float(every)
        self._stop = threading.Event()
        tags = {naming.TAG_HOST: socket.gethostname(), naming.TAG_PID: str(os.getpid()),
                naming.TAG_HEARTBEAT_EVERY: f"{self.every:g}", naming.TAG_HEARTBEAT: str(round(time.time()))}
        if command:
            tags[naming.TAG_COMMAND] = command
        tracker.set_tags(tags)
        self._thread = threading.Thread(target=self._beat, name="vlm_sweeps-heartbeat", daemon=True)
        if self.every > 0:
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tracker.set_tag(naming.TAG_HEARTBEAT, str(round(time.time())))
            except Exception as err:  # the job's own writes report a lost store; a beat only logs
                log.warning("heartbeat not written: %s", err)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def error_message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text[:6000]


def _yaml(tree: dict) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(tree))
