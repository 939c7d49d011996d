"""Credentials of tracking URIs are redacted wherever they would be written or printed."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from vlm_sweeps.redact import RedactFilter, redact_text, redact_tree, redact_uri


@pytest.mark.parametrize("uri, expected", [
    ("http://alice:SECRET@host:5000", "http://***@host:5000"),
    ("https://alice:p@ss@host/x@y", "https://***@host/x@y"),  # '@' inside the password
    ("postgresql://bob:pw@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
    ("mysql+pymysql://user@db/mlflow", "mysql+pymysql://***@db/mlflow"),
    ("https://host/api?token=abc123&x=1", "https://host/api?token=***&x=1"),
    ("https://host/api?x=1&Password=hunter2", "https://host/api?x=1&Password=***"),
    ("http://[::1]:5000", "http://[::1]:5000"),
    ("http://alice:SECRET@[::1]:5000/x", "http://***@[::1]:5000/x"),  # IPv6 host
    ("mysql://root:S3cret%40x@10.0.0.2:3306/mlflow?charset=utf8", "mysql://***@10.0.0.2:3306/mlflow?charset=utf8"),
    ("https://acct.blob.core.windows.net/c?sv=2022&sig=abc%2Bd&se=1",  # Azure SAS
     "https://acct.blob.core.windows.net/c?sv=2022&sig=***&se=1"),
    ("https://s3/b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=f00",  # S3 presigned
     "https://s3/b/k?X-Amz-Credential=***&X-Amz-Signature=***"),
    ("https://h/?api_key=k1&access_token=t1&monkey=1&keyboard=2",
     "https://h/?api_key=***&access_token=***&monkey=1&keyboard=2"),
    ("http://h/?mail=bob@example.com", "http://h/?mail=bob@example.com"),  # an '@' after the host is not userinfo
    ("http://***@host:5000", "http://***@host:5000"),  # redacting twice changes nothing
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("file:///tmp/mlruns", "file:///tmp/mlruns"),
    ("databricks", "databricks"),
])
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


@pytest.mark.parametrize("odd", ["", "://", "@", "http://@", "http://:@", "a://b@", "::::@@@//", "\x00http://u:p@h",
                                 "http://" + "a" * 10000 + "@h", "ünïcödé://ü:p@h", 123, None, b"bytes"])
def test_redact_uri_never_raises(odd):
    out = redact_uri(odd)
    if isinstance(odd, str) and "://" in odd and "@" in odd.split("://", 1)[1]:
        assert ":p@" not in str(out) and "a" * 100 not in str(out)


def test_redact_text_and_tree():
    text = "tracking:\n  uri: http://alice:S1@h:5000\n  other: postgresql://u:S2@db/x\nplain: a@b.c"
    clean = redact_text(text)
    assert "S1" not in clean and "S2" not in clean and "plain: a@b.c" in clean
    yaml_text = ("hydra:\n  overrides:\n    task:\n    - tracking.uri=http://alice:S3@127.0.0.1:9/\n"
                 "  job:\n    override_dirname: run.dry_run=true,tracking.uri=https://bob:S4@h,seed=1\n"
                 "tracking:\n  uri: 'https://h/api?token=S5'\n  experiment: vlm_sweeps\n")
    clean = redact_text(yaml_text)
    assert not any(s in clean for s in ("S3", "S4", "S5"))
    assert "- tracking.uri=http://***@127.0.0.1:9/" in clean and "tracking.uri=https://***@h,seed=1" in clean
    assert "uri: 'https://h/api?token=***'" in clean and clean.count("\n") == yaml_text.count("\n")
    line = "[2026-01-01 10:00:00][vlm_sweeps.job][INFO] - clip [abc] -> MLflow run 12 in http://alice:S6@tracker:5000"
    assert redact_text(line) == line.replace("alice:S6", "***")
    tree = redact_tree({"a": ["http://u:S3@h"], "b": 3, "c": ("x",)})
    assert tree == {"a": ["http://***@h"], "b": 3, "c": ("x",)}


def test_the_log_filter_redacts_formatted_messages(tmp_path):
    path = tmp_path / "job.log"
    handler = logging.FileHandler(path)
    handler.addFilter(RedactFilter())
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("run in %s", "http://alice:SECRET@h:5000")
    try:  # an exception whose message holds the URI (MLflow: "API request to http://u:pw@... failed")
        raise ConnectionError("API request to http://alice:SECRET@h:5000/api/2.0/x failed")
    except ConnectionError:
        logger.exception("store unreachable")
    handler.close()
    text = path.read_text()
    assert text.startswith("run in http://***@h:5000\n")
    assert "SECRET" not in text and "ConnectionError: API request to http://***@h:5000/api/2.0/x failed" in text


def test_install_log_filter_on_the_root_handlers(tmp_path):
    from vlm_sweeps.redact import install_log_filter

    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "root.log")
    root.addHandler(handler)
    try:
        install_log_filter()
        install_log_filter()  # idempotent
        assert sum(isinstance(f, RedactFilter) for f in handler.filters) == 1
        logging.getLogger("some.library").warning("connecting to %s", "postgresql://u:SECRET@db/x")
    finally:
        root.removeHandler(handler)
        handler.close()
    assert (tmp_path / "root.log").read_text().strip() == "connecting to postgresql://***@db/x"


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_no_file_a_job_writes_holds_the_secret(tmp_path):
    """Hydra's output files (.hydra/config.yaml, hydra.yaml, overrides.yaml) and the job log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.run", "tracking.uri=http://alice:SECRET@127.0.0.1:9/",
                          "run.dry_run=true"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "overrides.yaml" for p in files)
    for path in files:
        text = path.read_text(errors="replace")
        assert "SECRET" not in text, path
    assert any("http://***@127.0.0.1:9/" in p.read_text(errors="replace") for p in files)
    assert "SECRET" not in out.stdout + out.stderr


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_no_file_of_a_multirun_holds_the_secret(tmp_path):
    """A local sweep: the sweep's multirun.yaml, each job's .hydra files and log, and the console
    (Hydra's launcher logs every job's overrides). The secret rides in an override of a string."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.run", "-m", "seed=1,2", "run.dry_run=true",
                          "paths.data_root='https://bob:SECRET@data.example/v1?token=SECRET2'"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "mlflow.db" and "mlartifacts" not in p.parts]
    names = {p.name for p in files}
    assert {"multirun.yaml", "config.yaml", "hydra.yaml", "overrides.yaml"} <= names
    for path in files:
        assert "SECRET" not in path.read_text(errors="replace"), path
    assert "paths.data_root='https://***@data.example/v1?token=***'" in (next(
        p for p in files if p.name == "multirun.yaml")).read_text()
    assert "SECRET" not in out.stdout + out.stderr
    assert "https://***@data.example" in out.stdout + out.stderr  # the launcher's "#0 : ..." lines


def test_a_sweep_that_starts_no_job_here_gets_its_multirun_yaml_redacted(tmp_path):
    """hydra/launcher=slurm: Hydra's sweeper writes multirun.yaml, no job starts in this process."""
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from vlm_sweeps.redact import RedactHydraOutputs

    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - tracking.uri=http://a:SECRET@h:1\n")
    config = OmegaConf.create({"hydra": {"mode": RunMode.MULTIRUN, "sweep": {"dir": str(tmp_path)}}})
    RedactHydraOutputs().on_multirun_end(config)
    assert (tmp_path / "multirun.yaml").read_text().endswith("- tracking.uri=http://***@h:1\n")


def test_warnings_are_printed_redacted():
    """Hydra turns an exception of a callback into a warning with its message (a process of its
    own: pytest records warnings instead of printing them)."""
    code = ("import warnings; from vlm_sweeps.redact import install_warning_redaction as i; i(); i(); "
            "warnings.warn('Callback SweepCallback.on_multirun_start raised MlflowException: API request to "
            "http://alice:SECRET@h:5000/api/2.0/mlflow/experiments/get-by-name failed')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert "SECRET" not in out.stderr and "http://***@h:5000/api/2.0" in out.stderr and "UserWarning" in out.stderr
