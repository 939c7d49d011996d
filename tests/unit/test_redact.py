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
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("databricks", "databricks"),
])
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


def test_redact_text_and_tree():
    text = "tracking:\n  uri: http://alice:S1@h:5000\n  other: postgresql://u:S2@db/x\nplain: a@b.c"
    clean = redact_text(text)
    assert "S1" not in clean and "S2" not in clean and "plain: a@b.c" in clean
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
    handler.close()
    assert path.read_text().strip() == "run in http://***@h:5000"


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
