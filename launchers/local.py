"""The launch behind `hydra/launcher=local`: a sweep's jobs on this machine, up to `parallel` at a
time, each in a process of its own pinned to its slot (its share of the CPUs, or one GPU).

Each job is started through submitit's LocalExecutor (a controller process and the job's process,
its output in `<submitit_folder>/<job id>_0_log.out`) and runs exactly what Hydra's basic launcher runs in
its own process: Hydra's `run_job` on the job's composed config, so the job's output folder, its
`.hydra` files, the callbacks and `HydraConfig` are the same. The job itself skips a FINISHED
signature, resumes an interrupted one and owns its signature while it trains (vlm_sweeps.job);
the launcher only starts no process for the jobs whose FINISHED run lacks nothing (as the SLURM
launcher submits none). `python -m launchers status --tracking-uri URI` shows the jobs' states.

The jobs import their code from a snapshot copied into the sweep folder at launch (launchers/snapshot.py),
so editing the repository while a long sweep runs changes none of its later jobs.

Pinning happens in the job's process before anything imports torch (the job's payload is unpickled
only then), so torch's threads follow the slot: `vlm_sweeps.cpu_share` reads the affinity, and jobs
pinned to disjoint CPUs do not count each other. Ctrl-C or SIGTERM stops the running jobs as Ctrl-C
stops one (their runs marked interrupted; the same command resumes them); a second one kills them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from hydra.core.utils import JobReturn, JobStatus, filter_overrides, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

NO_LIMIT_MIN = 60 * 24 * 365  # submitit's local controller needs a time limit; a year is none
GRACE_S = 120.0  # after Ctrl-C, how long the jobs may take to mark their runs interrupted


@dataclass(frozen=True)
class Slot:
    """Where one running job is: its CPUs (None: not pinned) and its GPU (None: no GPU visible)."""

    index: int
    cpus: tuple[int, ...] | None
    gpu: str | None = None

    def describe(self) -> str:
        if self.cpus is None:
            cpus = "all CPUs"
        else:
            cpus = ("CPUs " if len(self.cpus) > 1 else "CPU ") + ",".join(map(str, self.cpus))
        return cpus + (f", GPU {self.gpu}" if self.gpu is not None else "")


def visible_gpus(spec: Any, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The GPUs jobs may be given: `spec` as a list of ids, or for "auto" this shell's
    CUDA_VISIBLE_DEVICES (empty: none), else the GPUs `nvidia-smi -L` lists (none without it)."""
    if spec != "auto":
        return [str(g) for g in (spec if isinstance(spec, (list, tuple)) else [] if spec is None else [spec])]
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in listed.splitlines() if line.startswith("GPU "))]


def plan_slots(parallel: Any, gpus: list[str], affinity: Sequence[int], budget: int,
               cpus_per_job: int | None = None, pin: bool = True) -> list[Slot]:
    """One slot per job running at once. `affinity`: the CPUs this process may run on; `budget`:
    how many of them it may use (its cgroup quota or SLURM allocation may be fewer). Each slot gets
    `cpus_per_job` CPUs (default: its share of the budget), disjoint while they last, and a GPU
    of `gpus` in turn. `parallel="auto"`: one slot per GPU, or one per CPU of the budget."""
    if parallel == "auto":
        parallel = len(gpus) or budget
    try:
        n = int(parallel)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(parallel) != str(n):
        raise ValueError(f"hydra.launcher.parallel={parallel}: must be a positive integer or auto")
    if cpus_per_job is not None and int(cpus_per_job) < 1:
        raise ValueError(f"hydra.launcher.cpus_per_job={cpus_per_job}: must be a positive integer or null")
    cores = sorted(affinity)
    per = min(len(cores), int(cpus_per_job) if cpus_per_job else max(1, budget // n))
    if pin and n * per > min(budget, len(cores)):
        log.warning("%d jobs of %d CPUs each on %d CPUs: they share CPUs (their torch threads are split, "
                    "vlm_sweeps/cpu_share.py); a smaller hydra.launcher.parallel gives each its own",
                    n, per, min(budget, len(cores)))
    if gpus and n > len(gpus):
        log.warning("%d jobs at once on %d GPUs: some GPUs run several jobs", n, len(gpus))
    return [Slot(i, tuple(cores[(i * per + k) % len(cores)] for k in range(per)) if pin else None,
                 gpus[i % len(gpus)] if gpus else None) for i in range(n)]


# --- in the job's process ---------------------------------------------------------------------------

@dataclass
class Ended:
    """What a job's process hands back: Hydra's JobReturn, or how it stopped without one."""

    kind: str  # "returned" | "interrupted" | "exited"
    job_return: JobReturn | None = None
    code: Any = None  # SystemExit's code


class PinnedJob:
    """One job, as submitit runs it in its own process: pins the process to its slot, then
    unpickles the job (torch and the job code load only now) and runs Hydra's `run_job` on it."""

    def __init__(self, common: bytes, config: bytes, slot: Slot, pid_file: str) -> None:
        self.common = common  # (callbacks, task function, Hydra's singleton state), the same for every job
        self.config = config  # the job's composed config (hydra node included), as Hydra's launchers pass it
        self.slot = slot
        self.pid_file = pid_file

    def __call__(self) -> Ended:
        _job_signals()
        Path(self.pid_file).write_text(str(os.getpid()))
        if self.slot.cpus is not None:
            os.sched_setaffinity(0, self.slot.cpus)  # before any thread starts: all of them inherit it
        # submitit's controller hid every GPU (it is given none); the slot's, if any, is the job's
        os.environ["CUDA_VISIBLE_DEVICES"] = self.slot.gpu if self.slot.gpu is not None else ""
        import cloudpickle
        from hydra.core.singleton import Singleton
        from hydra.core.utils import run_job
        from hydra.types import HydraContext

        from launchers import snapshot

        snapshot.check_imports()  # the sweep's code snapshot, when it has one; before the job's code loads
        callbacks, task_function, state = cloudpickle.loads(self.common)
        config = cloudpickle.loads(self.config)
        setup_globals()
        Singleton.set_state(state)
        try:
            ret = run_job(hydra_context=HydraContext(config_loader=None, callbacks=callbacks),  # type: ignore[arg-type]
                          task_function=task_function, config=config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        except KeyboardInterrupt:  # Ctrl-C, or the launcher stopping the sweep: the run stays resumable
            return Ended("interrupted")
        except SystemExit as stop:  # the entry point's own exits (vlm_sweeps/run.py), SIGTERM (job.Terminated)
            return Ended("interrupted" if stop.code in (130, 143) else "exited", code=stop.code)
        return Ended("returned", ret)


def _job_signals() -> None:
    """The launcher starts jobs with SIGINT ignored (so that a terminal's Ctrl-C does not reach
    submitit's controller, which would kill the job a second later): the job takes it back, once
    (the interruption's own cleanup is not cut short by a second one). SIGTERM, which submitit
    ignores, ends the job like Ctrl-C again (vlm_sweeps.job.terminated_as_interrupt)."""

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --- in the launching process -----------------------------------------------------------------------

@dataclass
class LocalJob:
    num: int
    overrides: list[str]
    signature: str
    view: DictConfig = field(repr=False)  # the job's config without the hydra node
    config: bytes = field(repr=False)  # the pickled sweep config for PinnedJob
    skipped: str | None = None  # "finished" | "duplicate"
    result: Any = None  # the finished run's metrics, of a skipped job
    label: str = ""  # "#<num> <the overrides that vary in the sweep>", for the terminal


def launch(params: dict[str, Any], config: DictConfig, hydra_context: Any, task_function: Any,
           job_overrides: Sequence[Sequence[str]], initial_job_idx: int, total: int | None = None) -> list[JobReturn]:
    """Run this batch of the sweep's jobs; `total`: the jobs of the whole sweep, where known (each
    job's start says `job 3 of 6`)."""
    import cloudpickle
    from hydra.core.singleton import Singleton

    from launchers import snapshot
    from launchers.freeze import Composer, begin_launch
    from vlm_sweeps import cpu_share
    from vlm_sweeps.validate import ConfigError

    options, sweep_dir = begin_launch(params, config)
    slots = plan_slots(options["parallel"], visible_gpus(options["gpus"]), sorted(os.sched_getaffinity(0)),
                       cpu_share.cpus_available(), options["cpus_per_job"], options["pin"])
    composer = Composer.attach(hydra_context.config_loader)
    jobs = [_compose(composer, config, overrides, initial_job_idx + i) for i, overrides in enumerate(job_overrides)]
    _label(jobs)
    try:
        _validate(jobs)
    except ConfigError as err:  # as `python -m vlm_sweeps.run` says it for one job: no traceback, exit 2
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _select(jobs, options["skip_finished"])
    todo = [j for j in jobs if j.skipped is None]
    _report_plan(sweep_dir.name, jobs, todo, slots)
    # the code the jobs import, copied now: a job that starts hours later runs what was launched (launchers/snapshot.py)
    code = snapshot.take(sweep_dir) if options.get("snapshot", True) and todo else None
    if code is not None:
        print(f"  code: {code.describe()}", flush=True)
    # what every job shares, pickled once: the job's process unpickles it after pinning itself
    common = cloudpickle.dumps((hydra_context.callbacks, task_function, Singleton.get_state()))
    folder = Path(str(options["submitit_folder"])).resolve()
    t0 = time.perf_counter()
    try:
        returns = _run(todo, slots, common, folder, options, config, code, total=total)
    except Interrupted as stop:  # the jobs have stopped (or were killed): exit as an interrupted job does
        raise SystemExit(128 + stop.signum) from None
    failed = sum(r.status == JobStatus.FAILED for r in returns)
    if todo:
        print(f"sweep {sweep_dir.name}: {len(todo) - failed} of {len(todo)} jobs ended well, {failed} failed, "
              f"in {time.perf_counter() - t0:.1f} s; their logs: {folder}/<job id>_0_log.out", flush=True)
    if jobs:
        from vlm_sweeps.redact import redact_uri

        print(f"  status: python -m launchers status --tracking-uri {redact_uri(jobs[0].view.tracking.uri)} "
              f"--sweep {sweep_dir.name}", flush=True)
    return _all_returns(jobs, dict(zip((j.num for j in todo), returns)), config)


def _report_plan(sweep_id: str, jobs: list[LocalJob], todo: list[LocalJob], slots: list[Slot]) -> None:
    """What the terminal shows before any job starts: how many run where, and what is skipped."""
    at_once = slots[:len(todo)]
    print(f"sweep {sweep_id}: running {len(todo)} of {len(jobs)} jobs on this machine"
          + (f", {len(at_once)} at a time ({'; '.join(s.describe() for s in at_once)})" if todo else ""), flush=True)
    for job in jobs:
        if job.skipped == "finished":
            print(f"  {job.label} [{job.signature}]: skipped (already finished)", flush=True)
        elif job.skipped == "duplicate":
            print(f"  {job.label} [{job.signature}]: skipped (the same signature as an earlier job of this sweep)",
                  flush=True)


def _all_returns(jobs: list[LocalJob], ran: dict[int, JobReturn], config: DictConfig) -> list[JobReturn]:
    """A JobReturn per job of the sweep: those that ran, their own; a finished one, its run's
    metrics (what the job would have returned); a duplicate, what the job it duplicates returned."""
    by_signature = {job.signature: ran[job.num] for job in jobs if job.num in ran}
    out = []
    for job in jobs:
        if job.num in ran:
            out.append(ran[job.num])
        elif job.skipped == "duplicate" and job.signature in by_signature:
            twin = by_signature[job.signature]
            out.append(_job_return(job, config, twin.status, twin._return_value))
        else:
            out.append(_job_return(job, config, JobStatus.COMPLETED, job.result))
    return out


def _compose(composer: Any, master: DictConfig, overrides: Sequence[str], num: int) -> LocalJob:
    """Job `num`, composed as Hydra's basic launcher composes it (its id and number set)."""
    import cloudpickle

    from launchers.freeze import anchor, task_config
    from vlm_sweeps import identity

    sweep_config = composer.take(master, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = num
        sweep_config.hydra.job.num = num
    view = OmegaConf.create(anchor(task_config(copy.deepcopy(sweep_config)), Path.cwd().resolve()))
    return LocalJob(num, list(overrides), identity.signature(view), view, cloudpickle.dumps(sweep_config))


def _label(jobs: list[LocalJob]) -> None:
    """Each job's label: its number and the overrides that differ between the jobs (all of them
    for a single job), as `python -m launchers status` shows a sweep."""
    from types import SimpleNamespace

    from vlm_sweeps.redact import redact_text

    from launchers.status import varying_keys

    keys = set(varying_keys([SimpleNamespace(overrides=filter_overrides(j.overrides)) for j in jobs]))
    keys = keys if len(jobs) > 1 else None
    for job in jobs:
        shown = [o for o in filter_overrides(job.overrides) if keys is None or o.partition("=")[0] in keys]
        job.label = redact_text(f"#{job.num} {' '.join(shown)}".rstrip())


def _validate(jobs: list[LocalJob]) -> None:
    """The job's own cross-axis checks, before any job starts: one error for the whole sweep."""
    from vlm_sweeps import validate

    found: dict[str, list[str]] = {}
    for job in jobs:
        for problem in validate.problems(job.view):
            found.setdefault(problem, []).append(f"#{job.num}")
    if found:
        raise validate.ConfigError([f"{problem} (jobs {', '.join(nums)})" for problem, nums in found.items()])


def _select(jobs: list[LocalJob], skip_finished: bool) -> None:
    """Mark the jobs that need no process: a FINISHED run that lacks none of the job's benchmarks
    (a run that lacks some runs: the job evaluates them on its checkpoint, vlm_sweeps/eval/pending.py),
    or a signature that an earlier job of the sweep has. The store's schema and experiment are
    created here, before any job starts."""
    from vlm_sweeps import tracking
    from vlm_sweeps.eval import pending

    from launchers import store

    finished: dict[tuple[str, str], dict[str, Any]] = {}
    first: dict[str, LocalJob] = {}
    for job in jobs:
        target = (job.view.tracking.uri, job.view.tracking.experiment)
        if target not in finished:
            tracking.ensure_experiment(*target)
            finished[target] = store.job_runs(*target, finished_only=True) if skip_finished else {}
        run = finished[target].get(job.signature)
        if job.signature in first:
            job.skipped, job.result = "duplicate", first[job.signature].result
        elif run is not None and not pending.lacking_for(job.view, run.data.metrics, run.data.tags, run.data.params):
            job.skipped, job.result = "finished", dict(run.data.metrics)
        first.setdefault(job.signature, job)


@dataclass
class _Running:
    job: LocalJob
    slot: Slot
    handle: Any  # submitit LocalJob
    pid_file: Path
    started: float


def _run(jobs: list[LocalJob], slots: list[Slot], common: bytes, folder: Path, options: dict[str, Any],
         config: DictConfig, code: Any = None, total: int | None = None) -> list[JobReturn]:
    """Start the jobs in order as slots free up; their JobReturns in the jobs' order. `code`: the
    snapshot (launchers/snapshot.py) the jobs import their code from; None: the code on disk.
    `total`: the jobs of the whole sweep (`job 3 of 6`), where known."""
    import submitit

    from launchers import snapshot

    if not jobs:
        return []
    executor = submitit.LocalExecutor(folder=folder)  # one folder: <job id>_submitted.pkl, _0_log.out, ...
    executor.update_parameters(timeout_min=options["timeout_min"] or NO_LIMIT_MIN, gpus_per_node=0,
                               tasks_per_node=1, nodes=1, stderr_to_stdout=True)
    (folder / "pids").mkdir(parents=True, exist_ok=True)
    pending, free = deque(jobs), list(slots)
    running: list[_Running] = []
    returns: dict[int, JobReturn] = {}
    with _handling(signal.SIGTERM, _interrupt):  # `kill`, `timeout`: stop the jobs too, as Ctrl-C does
        try:
            while pending or running:
                while pending and free:
                    job, slot = pending.popleft(), free.pop(0)
                    pid_file = folder / "pids" / f"{job.num}.pid"
                    pid_file.unlink(missing_ok=True)
                    # SIGINT ignored, as the controller inherits it: a Ctrl-C is the job's alone (PinnedJob)
                    with _handling(signal.SIGINT, signal.SIG_IGN), \
                            _environment(snapshot.environment(code) if code is not None else {}):
                        handle = executor.submit(PinnedJob(common, job.config, slot, str(pid_file)))
                    running.append(_Running(job, slot, handle, pid_file, time.perf_counter()))
                    of = f" of {total}" if total else ""
                    print(f"  {job.label} [{job.signature}]: job {job.num + 1}{of}, started on {slot.describe()} "
                          f"(submitit job {handle.job_id})", flush=True)
                time.sleep(options["poll_s"])
                for r in [r for r in running if r.handle.done()]:
                    running.remove(r)
                    free.append(r.slot)
                    free.sort(key=lambda s: s.index)
                    returns[r.job.num] = _collect(r, config)
        except KeyboardInterrupt as err:
            print(f"interrupted: stopping {len(running)} running job(s); they mark their runs interrupted "
                  "(Ctrl-C again kills them); the same command resumes them", flush=True)
            _stop(running)
            raise Interrupted(getattr(err, "signum", signal.SIGINT)) from None
    return [returns[job.num] for job in jobs]


def _collect(r: _Running, config: DictConfig) -> JobReturn:
    """The job's JobReturn (Hydra's, from its process), or a FAILED one saying how it ended."""
    seconds, logfile = time.perf_counter() - r.started, r.handle.paths.stdout
    if not r.handle.paths.result_pickle.exists():  # killed (OOM, SIGKILL): its run is dead until resumed
        ended = Ended("exited", code="killed, without a result")
    else:
        try:
            ended = r.handle.result()
        except Exception as err:  # raised in PinnedJob itself (submitit passes the traceback)
            lines = str(err).strip().splitlines()
            ended = Ended("exited", code=f"error: {lines[-1] if lines else repr(err)}")
    if ended.kind == "returned" and ended.job_return is not None:
        ret = ended.job_return
        if ret.status == JobStatus.COMPLETED:
            print(f"  {r.job.label} [{r.job.signature}]: ended in {seconds:.1f} s", flush=True)
        else:
            print(f"  {r.job.label} [{r.job.signature}]: FAILED after {seconds:.1f} s: {ret._return_value!r}; "
                  f"log: {logfile}", flush=True)
        return ret
    if ended.kind == "interrupted":
        error = RuntimeError(f"job {r.job.label} [{r.job.signature}] was interrupted; the same command resumes it")
    else:
        last = _last_line(logfile)
        error = RuntimeError(f"job {r.job.label} [{r.job.signature}] exited ({ended.code})"
                             + (f": {last}" if last else "") + f"; log: {logfile}")
    print(f"  {error}", flush=True)
    return _job_return(r.job, config, JobStatus.FAILED, error)


def _last_line(path: Path) -> str | None:
    """The job's last `error:` line (the entry point's message for the user), else its last line."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [None])[-1]


def _stop(running: list[_Running]) -> None:
    """SIGINT to each running job's process (as Ctrl-C would send it), then wait for them to end;
    a second interruption, or GRACE_S, kills them."""
    signalled: set[int] = set()
    deadline = time.monotonic() + GRACE_S
    try:
        while any(not r.handle.done() for r in running):
            for r in running:
                pid = _pid(r.pid_file)
                if pid is not None and pid not in signalled and not r.handle.done():
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGINT)
                    signalled.add(pid)
            if time.monotonic() > deadline:
                raise KeyboardInterrupt
            time.sleep(0.2)
    except KeyboardInterrupt:
        for r in running:
            for pid in (_pid(r.pid_file), r.handle.job_id):
                with contextlib.suppress(OSError, TypeError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


class Interrupted(KeyboardInterrupt):
    """The launcher was interrupted (`signum`); its jobs have been stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """`variables` in os.environ while the block runs (a job's controller and process inherit them)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _handling(signum: int, handler: Any) -> Iterator[None]:
    """`handler` for `signum` while the block runs (nothing changes outside the main thread).
    An ignored SIGINT stays ignored across exec: a controller started meanwhile never sees a
    Ctrl-C (it would forward it to its job and SIGKILL the job a second later)."""
    try:
        previous = signal.signal(signum, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signum, previous)


def _job_return(job: LocalJob, config: DictConfig, status: JobStatus, value: Any) -> JobReturn:
    ret = JobReturn(overrides=job.overrides, cfg=job.view, hydra_cfg=config, working_dir=os.getcwd(),
                    task_name=str(config.hydra.job.name), status=status)
    ret.return_value = value
    return ret
