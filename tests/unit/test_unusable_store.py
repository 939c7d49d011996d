"""A store that cannot be used is one `error:` line, before anything trains: a sqlite file that is
not a database (a job, `launchers status`, `analysis`), and a tracking server that does not answer."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SMALL, compose, free_port
from vlm_sweeps import tracking
from vlm_sweeps.job import run_job

NOT_A_DATABASE = "is not an SQLite database (corrupted, or another file): move it aside and re-run"


@pytest.fixture()
def corrupted(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(bytes(range(256)) * 64)  # 16 KB of anything but SQLite's header
    return db


def test_a_job_on_a_corrupted_store_stops_before_training(corrupted, tmp_path, clean_env, monkeypatch):
    from vlm_sweeps import job

    monkeypatch.setattr(job, "setup", lambda *a, **k: pytest.fail("the model was about to be built"))
    with pytest.raises(tracking.StoreUnusable, match=re.escape(f"{corrupted} {NOT_A_DATABASE}")):
        run_job(compose(SMALL + [f"tracking.uri=sqlite:///{corrupted}", "tracking.process=false"], root=tmp_path))
    assert corrupted.read_bytes() == bytes(range(256)) * 64  # left as it was


def test_status_and_analysis_say_it_in_one_line(corrupted, tmp_path, capsys):
    from analysis.cli import main as analysis_main
    from launchers.__main__ import main as launchers_main

    assert launchers_main(["status", "--tracking-uri", f"sqlite:///{corrupted}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and NOT_A_DATABASE in err[0], err
    assert analysis_main(["--tracking-uri", f"sqlite:///{corrupted}", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and NOT_A_DATABASE in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_server_that_does_not_answer_is_refused_in_seconds():
    import time

    uri = f"http://alice:pw@127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(tracking.StoreUnusable, match=r"the tracking server http://\*\*\*@127\.0\.0\.1:\d+ does not answer"):
        tracking.probe(uri)
    assert time.monotonic() - started < 15
    tracking.probe("sqlite:////nonexistent/folder/mlflow.db")  # a store still to be created: nothing to say
