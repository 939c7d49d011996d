"""Shared fixtures: composing configs exactly as the CLI does, and one synthetic world and
tokenizer per test session (built once, reused by every tier that needs them)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

# the default synthetic suite (conf/benchmarks/synthetic.yaml), what a sweep without benchmarks.suite evaluates
DEFAULT_SUITE = list(OmegaConf.load(CONF / "benchmarks" / "synthetic.yaml").suite)
# Small but real settings: every family and code path, a few seconds per job.
SMALL = ["data.synthetic.n_align=64", "data.synthetic.n_finetune=96", "data.synthetic.n_eval=12",
         "run.progress=false"]


def compose(overrides: list[str] | None = None, root: Path | None = None):
    """The config `python -m vlm_sweeps.run <overrides>` would run (Hydra's compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from vlm_sweeps.config import register_configs

    register_configs()
    extra = [f"paths.root={root}"] if root is not None else []
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides or []) + extra)


_EMPTY_STORE: Path | None = None


def seed_store(db: Path) -> Path:
    """Give the sqlite file `db` MLflow's schema and nothing else, unless it exists: a copy of an empty
    store that MLflow made once in this process. A fresh store costs ~3 s of CPU in MLflow's schema
    migrations, in every job process that meets one; the tests of a fresh store's creation (several
    jobs at once, its lock) start without one: tests/unit/test_run_records.py, test_reliability.py."""
    global _EMPTY_STORE
    if db.exists():
        return db
    if _EMPTY_STORE is None or not _EMPTY_STORE.exists():
        import tempfile

        from mlflow.tracking import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="vlm_sweeps_empty_store_"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()  # creates the schema
        _EMPTY_STORE = folder / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_EMPTY_STORE, db)
    return db


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on a sqlite database in `folder` (the README's database-backed one),
    on one port for its life: `kill()` ends it by its PID (SIGKILL, as a lost node does), `start()`
    brings it back on the same port and database."""

    def __init__(self, folder: Path, workers: int = 1):
        self.folder, self.workers, self.port = Path(folder), workers, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        seed_store(self.folder / "server.db")

    def start(self, timeout: float = 180) -> "MlflowServer":
        import urllib.request

        log = open(self.folder / "mlflow_server.log", "a")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            [shutil.which("mlflow") or "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(self.workers)], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.uri + "/health", timeout=2)
                return self
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    (self.folder / "mlflow_server.log").read_text()[-3000:]
                time.sleep(0.5)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)


def seed_job_store(args: list[str], cwd: Path) -> None:
    """seed_store for the sqlite file a `python -m vlm_sweeps.run ARGS` started in `cwd` tracks to
    (tracking.uri=, else ./mlflow.db); nothing for another kind of store."""
    uri = next((a.split("=", 1)[1] for a in args if a.startswith("tracking.uri=")), None)
    if uri is None:
        seed_store(cwd / "mlflow.db")
    elif uri.startswith("sqlite:///"):
        seed_store(Path(uri[len("sqlite:///"):]))


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vlm_sweeps_root")


@pytest.fixture(scope="session")
def small_world(session_root):
    """(world folder, tokenizer) of the SMALL synthetic settings, built once per session."""
    from vlm_sweeps.data.synthetic import ensure_world
    from vlm_sweeps.job import load_tokenizer

    cfg = compose(SMALL, root=session_root)
    cache = Path(cfg.paths.cache_dir)
    world = ensure_world(cache, cfg.data.synthetic)
    return world, load_tokenizer(cfg, world, cache)


@pytest.fixture()
def clean_env(monkeypatch):
    """No tracking URI leaking in from the developer's shell."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    return os.environ


# Test tiers, one per folder, selectable by marker: the fast ones (unit, config, eval, analysis,
# full, launchers) with
#   python -m pytest -m "not integration and not distributed and not cluster"
# and CI runs everything. A test may also carry a slower tier's marker itself (an end-to-end test in
# a fast folder is marked `integration`).
TIERS = ("unit", "config", "eval", "analysis", "full", "launchers", "integration", "distributed", "cluster")

# pytest-xdist (`-n 2 --dist loadgroup`, the default in pyproject.toml): each group runs whole on one
# worker, so the fixtures it shares are made once. A module is a group; these tiers are one group
# each, because their session fixtures are expensive (the SLURM cluster: one per session) or shared
# across their modules.
SHARED_TIERS = ("cluster", "distributed", "analysis", "full")


def group_of(folder: str, module: str) -> str:
    return folder if folder in SHARED_TIERS else module


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups
def pytest_collection_modifyitems(config, items):
    root = Path(__file__).resolve().parent
    for item in items:
        try:
            relative = Path(str(item.fspath)).resolve().relative_to(root)
        except ValueError:
            continue
        folder = relative.parts[0]
        if folder in TIERS:
            item.add_marker(getattr(pytest.mark, folder))
            if item.get_closest_marker("xdist_group") is None:  # a test may name its own group
                item.add_marker(pytest.mark.xdist_group(group_of(folder, relative.as_posix())))


def pytest_configure(config):
    """Under xdist each worker counts as a vlm_sweeps job on this host (vlm_sweeps.cpu_share's registry),
    with an equal share of the cores for its own torch: a job it runs in-process or starts as a
    process then takes its share of what is left, never the whole machine. Two workers whose torch
    each took every core would oversubscribe it many times over (35x slower generation was seen)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if os.environ.get("PYTEST_XDIST_WORKER") and workers > 1:
        from vlm_sweeps import cpu_share

        cpu_share.start(max(1, len(os.sched_getaffinity(0)) // workers))
