"""A job's tracking in a process of its own: the `JobTracker` of tracking.py, served over a pipe.

Why: before a job may train it must ask the store whether its signature already finished and which
run a checkpoint resumes, and importing MLflow and opening its SQL store cost ~3 s of CPU. In a
process of its own, started (`prestart`) before the job imports torch and transformers, that work
runs on another core meanwhile; during training, the curve points (a SQL commit each) leave the
training loop's critical path.

One tracking process per job process, shared by the jobs that process runs one after another (a
local sweep, a test session); `tracking.process=false` keeps the tracker in the job's own process.

- Calls whose result the job does not need (curve points, metrics, tags, artifacts) do not wait
  for their reply. They stay in order with the others. The first one that fails (a write lost: the
  store refused it, or a server stayed unreachable through tracking.write_retries) is reported at
  once, and the job's next call raises TrackingError: the job fails then, marking its run FAILED
  where the store still answers. The writes queued after a lost one are not attempted (each would
  wait out its retries: hours for a dead server); the error names them. A job never ends FINISHED
  with a write lost, and never waits on a store that is gone.
- The tracking process ignores SIGINT, SIGTERM and SIGUSR1/2: a Ctrl-C or a preemption signal is
  the job's to handle, and the job then marks its run interrupted or failed through this process.
  It exits when the job's end of the pipe closes, also when the job dies, after the calls
  already sent.
- Each tracker sees the job's environment of when it was opened (MLflow's settings such as
  credentials, SLURM's job ids for the tags) and works in the job's working directory.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from typing import Any, BinaryIO

from vlm_sweeps.tracking import JobTracker, StoreUnusable, error_message
from vlm_sweeps.train import is_rank_zero

log = logging.getLogger(__name__)

MODULE = "vlm_sweeps.tracking_process"
ENV_PREFIXES = ("MLFLOW_", "SLURM_")  # what a tracker reads from the job's environment
NO_REPLY = frozenset({"log_curve", "log_metrics", "log_text", "log_records", "set_tag", "set_tags", "tag_align"})


class TrackingError(RuntimeError):
    """A call to the tracking store failed in the tracking process (the message says how), or
    the tracking process is gone."""


NOTICE = 0  # the call number of a message the tracking process sends unasked: a write was lost


class TrackingProcess:
    """The tracking process of this process, and the pipe to it. A reader thread takes its
    messages: replies, in order, and the notice of a lost write, which the next call raises."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._calls = 0
        self._generation = 0  # of the process now running: a tracker belongs to one
        self._sent = 0  # calls sent to the process now running
        self._replies: queue.Queue = queue.Queue()
        self._lost: dict[int, str] = {}  # the running process's notices of a lost write, by tracker

    def start(self) -> None:
        """Start it, unless it runs already."""
        with self._lock:
            self._running()

    def _running(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-m", MODULE], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE)
            self._generation += 1
            self._sent = 0
            self._replies, self._lost = queue.Queue(), {}
            threading.Thread(target=self._read, args=(self._proc.stdout, self._replies, self._generation),
                             name="vlm_sweeps-tracking-replies", daemon=True).start()
        return self._proc

    def _read(self, stdout: BinaryIO, replies: queue.Queue, generation: int) -> None:
        while True:
            try:
                message = pickle.load(stdout)
            except (OSError, EOFError, ValueError, pickle.UnpicklingError):
                replies.put(None)  # the process is gone
                return
            if message[0] == NOTICE:
                if generation == self._generation:
                    self._lost[message[1]] = message[2]
            else:
                replies.put(message)

    def call(self, tracker: tuple[int, int] | None, method: str, *args: Any, **kwargs: Any) -> Any:
        """`method(*args, **kwargs)` of `tracker` there (`open`: None, and a tracker's handle is the
        result); its result, or None at once for NO_REPLY methods. A tracker lives as long as the
        process that opened it: a call to one whose process died raises TrackingError, as does any
        call of a tracker that lost a write but `finish` (which then fails the run), `fail` and
        `interrupted`."""
        reply = method not in NO_REPLY
        with self._lock:
            if tracker is None:
                self._running()
            elif self._proc is None or self._proc.poll() is not None or tracker[0] != self._generation:
                raise TrackingError(f"the tracking process ({MODULE}) that opened this run exited"
                                    f"{self._exit_code()} before {method}; its error, if any, is on stderr above")
            elif tracker[1] in self._lost and method not in ("finish", "fail", "interrupted"):
                raise TrackingError(self._lost[tracker[1]])
            proc, replies = self._proc, self._replies
            self._calls += 1
            self._sent += 1
            # pickled whole before anything is written: an argument that cannot be pickled raises
            # here and leaves the pipe as it was
            request = pickle.dumps((self._calls, tracker and tracker[1], method, args, kwargs, reply),
                                   protocol=pickle.HIGHEST_PROTOCOL)
            try:
                proc.stdin.write(request)
                proc.stdin.flush()
                if not reply:
                    return None
                message = replies.get()
                if message is None:
                    raise EOFError
            except (OSError, EOFError) as err:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
                raise TrackingError(f"the tracking process ({MODULE}) exited{self._exit_code()} during {method}; "
                                    "its error, if any, is on stderr above") from err
        call, ok, value = message
        assert call == self._calls, (call, self._calls)
        if not ok:
            raise TrackingError(value)
        return (self._generation, value) if method == "open" else value

    def _exit_code(self) -> str:
        code = self._proc.poll() if self._proc is not None else None
        return f" with code {code}" if code is not None else ""

    def close(self, timeout: float = 60.0) -> None:
        """Let it finish the calls already sent, and exit (at once when it was sent none: a job
        that stopped before tracking, e.g. on a config error, does not wait for its imports)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        if not self._sent:
            proc.kill()
            proc.wait()
            return
        try:
            proc.stdin.close()
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired) as err:
            log.warning("tracking process did not exit cleanly (%s); killing it", err)
            proc.kill()


_PROCESS = TrackingProcess()
atexit.register(_PROCESS.close)


def prestart(enabled: bool = True) -> None:
    """Start this process's tracking process now, so that its imports run beside the job's (the
    entry points call it before importing torch); only where it will serve: `enabled`
    (`tracking.process`) and rank 0, the one rank that tracks."""
    if enabled and is_rank_zero():
        _PROCESS.start()


class RemoteTracker:
    """A JobTracker in the tracking process, as the job calls it (same methods, plain data)."""

    def __init__(self, uri: str, experiment: str, process: TrackingProcess = _PROCESS,
                 environment: dict[str, str] | None = None):
        self.uri, self.run_id, self._process = uri, None, process
        environment = {**{k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}, **(environment or {})}
        self._id = process.call(None, "open", uri, experiment, environment, os.getcwd())

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._process.call(self._id, method, *args, **kwargs)

    def finished_run(self, signature: str) -> tuple[str, dict[str, float]] | None:
        return self._call("finished_run", signature)

    def unfinished(self, signature: str) -> set[str]:
        return self._call("unfinished", signature)

    def finished_record(self, signature: str) -> dict | None:
        return self._call("finished_record", signature)

    def attach(self, run_id: str) -> str:
        self.run_id = self._call("attach", run_id)
        return self.run_id

    def start(self, *args: Any, **kwargs: Any) -> str:
        self.run_id = self._call("start", *args, **kwargs)
        return self.run_id

    def reopen(self, run_id: str, sweep_id: str | None) -> str:
        self.run_id = self._call("reopen", run_id, sweep_id)
        return self.run_id

    def set_tag(self, key: str, value: str) -> None:
        self._call("set_tag", key, value)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._call("set_tags", {k: str(v) for k, v in tags.items()})

    def tag_align(self, align_signature: str, source: str) -> None:
        self._call("tag_align", align_signature, source)

    def log_curve(self, metrics: dict[str, float], step: int) -> None:
        self._call("log_curve", {k: float(v) for k, v in metrics.items()}, step)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self._call("log_metrics", {k: float(v) for k, v in metrics.items()}, step)

    def log_records(self, records: list[dict], artifact_file: str) -> None:
        self._call("log_records", records, artifact_file)

    def interrupted(self) -> None:
        self._call("interrupted")

    def finish(self) -> None:
        self._call("finish")

    def fail(self, error: BaseException | str) -> None:
        self._call("fail", error if isinstance(error, str) else error_message(error))


def open_tracker(uri: str, experiment: str, separate_process: bool = True,
                 environment: dict[str, str] | None = None) -> RemoteTracker | JobTracker:
    """The tracker of one job: in the tracking process, or (`separate_process=False`) here.
    `environment`: MLflow variables for its store (tracking.http_environment), on top of the job's."""
    if separate_process:
        return RemoteTracker(uri, experiment, environment=environment)
    os.environ.update(environment or {})
    return JobTracker(uri, experiment)


def _adopt(environment: dict[str, str], cwd: str) -> None:
    """The job's MLflow and SLURM variables and working directory, for the tracker opened next."""
    for key in [k for k in os.environ if k.startswith(ENV_PREFIXES) and k not in environment]:
        del os.environ[key]
    os.environ.update(environment)
    os.chdir(cwd)


def _of_the_store(err: BaseException) -> bool:
    """An error of the store itself (MLflow's, its database's, the network's), not of our code: the
    job reports it in one line, so no traceback is printed for it here."""
    kinds = {k.__module__.split(".")[0] for k in type(err).__mro__}
    return bool(kinds & {"mlflow", "sqlalchemy", "sqlite3", "requests", "urllib3"}) or isinstance(err, OSError)


def _deleted_store(tracker: JobTracker | None) -> str | None:
    """What to say when the sqlite file of a tracker's store is gone (its writes then fail with
    "attempt to write a readonly database", which names nothing)."""
    from vlm_sweeps.tracking import sqlite_file

    database = sqlite_file(tracker.uri) if tracker is not None else None
    if database is not None and not database.exists():
        return f"the tracking store {database} was deleted while the job ran"
    return None


def _short(text: str, limit: int = 300) -> str:
    """`text` on one line (SQL errors span several), cut at `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."


class _Lost:
    """The writes of a tracking process's run lost since the first that failed: that one's error,
    then the others, not attempted (how many of each kind, and the curve's steps)."""

    def __init__(self, method: str, error: str):
        self.first = f"{method}: {_short(error, 600)}"
        self.dropped: dict[str, int] = {}
        self.steps: list[int] = []

    def drop(self, method: str, args: tuple) -> None:
        self.dropped[method] = self.dropped.get(method, 0) + 1
        if method in ("log_curve", "log_metrics") and len(args) > 1:
            self.steps.append(int(args[1]))

    def __str__(self) -> str:
        text = f"a write to the tracking store failed: {self.first}"
        if self.dropped:
            kinds = ", ".join(f"{method} x{n}" for method, n in self.dropped.items())
            steps = f" (steps {min(self.steps)}-{max(self.steps)})" if self.steps else ""
            text += f"; not attempted after it: {kinds}{steps}"
        return text


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer calls until `requests` ends (the tracking process's loop)."""
    trackers: dict[int, JobTracker] = {}
    lost: dict[int, _Lost] = {}  # a tracker's writes since the first that failed with nobody waiting

    def send(message: tuple) -> None:
        pickle.dump(message, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()

    while True:
        try:
            call, tracker, method, args, kwargs, reply = pickle.load(requests)
        except EOFError:
            return
        if tracker in lost and not reply:  # after a lost write: the job is told and fails at its next call
            lost[tracker].drop(method, args)
            continue
        failed_for_lost = method == "finish" and tracker in lost
        if failed_for_lost:  # a write was lost: the run did not finish well
            method, args = "fail", (f"TrackingError: {lost[tracker]}",)
        try:
            if method == "open":
                _adopt(*args[2:])
                trackers[call] = JobTracker(*args[:2])
                value = call
            else:
                value = getattr(trackers[tracker], method)(*args, **kwargs)
            ok = True
        except Exception as err:  # reported to the job, which raises it
            ok, value = False, str(err) if isinstance(err, StoreUnusable) else error_message(err)
            gone = _deleted_store(trackers.get(tracker))
            if gone:
                value = f"{gone} ({value})"
            if isinstance(err, StoreUnusable):  # said by the job, in one line
                pass
            elif _of_the_store(err):  # the job says it when it next waits: one line here, as it happens
                log.error("tracking call %s failed: %s", method, _short(value))
            else:
                log.exception("tracking call %s failed", method)
        if not reply:
            if not ok:
                lost[tracker] = _Lost(method, value)
                send((NOTICE, tracker, str(lost[tracker])))
            continue
        if tracker in lost:
            if method in ("fail", "interrupted") and not failed_for_lost:  # the job is failing already, saying it
                value = value if ok else f"{_short(value)}; before it, {lost[tracker]}"
            else:
                ok, value = False, (f"{lost[tracker]}; the run is marked FAILED" if ok else
                                    f"{lost[tracker]}; the run could not be marked FAILED either ({_short(value)})")
        send((call, ok, value))


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, not into the replies
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    # MLflow logs each failed SQL statement with its traceback before raising it: the error reaches
    # the job, which says it once (a deleted store made 67 copies of one error, 2,130 lines)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    # what every job asks for first, imported while the job imports its own libraries
    import mlflow.tracking  # noqa: F401

    try:
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    except ImportError:  # an MLflow without SQL stores: only servers
        pass
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
