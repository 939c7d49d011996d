"""A job's tracking in a process of its own: the `JobTracker` of tracking.py, served over a pipe.

Why: before a job may train it must ask the store whether its signature already finished and which
run a checkpoint resumes, and importing MLflow and opening its SQL store cost ~3 s of CPU. In a
process of its own, started (`prestart`) before the job imports torch and transformers, that work
runs on another core meanwhile; during training, the curve points (a SQL commit each) leave the
training loop's critical path.

One tracking process per job process, shared by the jobs that process runs one after another (a
local sweep, a test session); `tracking.process=false` keeps the tracker in the job's own process.

- Calls whose result the job does not need (curve points, metrics, tags, artifacts) do not wait
  for their reply. They stay in order with the others, and an error in one is raised by the next
  call that waits, at the latest `finish`, which then marks the run FAILED instead: a job never
  ends FINISHED with a write lost.
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
import signal
import subprocess
import sys
import threading
from typing import Any, BinaryIO

from vlm_sweeps.tracking import JobTracker, error_message
from vlm_sweeps.train import is_rank_zero

log = logging.getLogger(__name__)

MODULE = "vlm_sweeps.tracking_process"
ENV_PREFIXES = ("MLFLOW_", "SLURM_")  # what a tracker reads from the job's environment
NO_REPLY = frozenset({"log_curve", "log_metrics", "log_text", "log_records", "set_tag", "set_tags", "tag_align"})


class TrackingError(RuntimeError):
    """A call to the tracking store failed in the tracking process (the message says how), or
    the tracking process is gone."""


class TrackingProcess:
    """The tracking process of this process, and the pipe to it."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._calls = 0
        self._generation = 0  # of the process now running: a tracker belongs to one
        self._sent = 0  # calls sent to the process now running

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
        return self._proc

    def call(self, tracker: tuple[int, int] | None, method: str, *args: Any, **kwargs: Any) -> Any:
        """`method(*args, **kwargs)` of `tracker` there (`open`: None, and a tracker's handle is the
        result); its result, or None at once for NO_REPLY methods. A tracker lives as long as the
        process that opened it: a call to one whose process died raises TrackingError."""
        reply = method not in NO_REPLY
        with self._lock:
            if tracker is None:
                self._running()
            elif self._proc is None or self._proc.poll() is not None or tracker[0] != self._generation:
                raise TrackingError(f"the tracking process ({MODULE}) that opened this run exited"
                                    f"{self._exit_code()} before {method}; its error, if any, is on stderr above")
            proc = self._proc
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
                call, ok, value = pickle.load(proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as err:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
                raise TrackingError(f"the tracking process ({MODULE}) exited{self._exit_code()} during {method}; "
                                    "its error, if any, is on stderr above") from err
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

    def __init__(self, uri: str, experiment: str, process: TrackingProcess = _PROCESS):
        self.uri, self.run_id, self._process = uri, None, process
        environment = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
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


def open_tracker(uri: str, experiment: str, separate_process: bool = True) -> RemoteTracker | JobTracker:
    """The tracker of one job: in the tracking process, or (`separate_process=False`) here."""
    return RemoteTracker(uri, experiment) if separate_process else JobTracker(uri, experiment)


def _adopt(environment: dict[str, str], cwd: str) -> None:
    """The job's MLflow and SLURM variables and working directory, for the tracker opened next."""
    for key in [k for k in os.environ if k.startswith(ENV_PREFIXES) and k not in environment]:
        del os.environ[key]
    os.environ.update(environment)
    os.chdir(cwd)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer calls until `requests` ends (the tracking process's loop)."""
    trackers: dict[int, JobTracker] = {}
    lost: str | None = None  # the first error of a call nobody waited for, not yet reported
    while True:
        try:
            call, tracker, method, args, kwargs, reply = pickle.load(requests)
        except EOFError:
            return
        failed_for_lost = method == "finish" and lost is not None
        if failed_for_lost:  # a write was lost: the run did not finish well
            method, args = "fail", (f"TrackingError: a write to the tracking store failed: {lost}",)
        try:
            if method == "open":
                _adopt(*args[2:])
                trackers[call] = JobTracker(*args[:2])
                value = call
            else:
                value = getattr(trackers[tracker], method)(*args, **kwargs)
            ok = True
        except Exception as err:  # reported to the job, which raises it
            log.exception("tracking call %s failed", method)
            ok, value = False, error_message(err)
        if not reply:
            lost = lost or (None if ok else f"{method}: {value}")
            continue
        if lost is not None:
            if method in ("fail", "interrupted") and not failed_for_lost:  # the job is failing already
                log.warning("a write to the tracking store failed earlier: %s", lost)
            elif ok:
                ok, value = False, f"a write to the tracking store failed: {lost}"
            lost = None
        pickle.dump((call, ok, value), replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, not into the replies
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    # what every job asks for first, imported while the job imports its own libraries
    import mlflow.tracking  # noqa: F401

    try:
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    except ImportError:  # an MLflow without SQL stores: only servers
        pass
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
