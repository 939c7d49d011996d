"""The report from a store: files per varying axis, self-contained HTML, parent-run logging."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from analysis import AnalysisError, analyze, load_store, write_report
from analysis.cli import main
from analysis.publish import ARTIFACT_PATH, NOTE_TAG, ZSCORE_METRIC

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_cli_writes_a_radar_per_varying_axis(store, encoder_resize, tmp_path):
    """Issue 2, item 8: encoder and resize vary -> radar charts for both, table, report."""
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "--tracking-uri", store[0], "--out", str(out),
         "--experiment", encoder_resize[0]],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    for axis in ("encoder", "resize"):
        for ext in ("png", "pdf"):
            assert (out / f"radar_{axis}.{ext}").stat().st_size > 1000
    assert not list(out.glob("radar_llm*"))  # llm does not vary
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 6 and "zscore_mean" in summary
    assert (out / "summary.md").exists()
    page = (out / "report.html").read_text()
    assert "radar_encoder.pdf" in page  # linked
    assert proc.stdout.strip().splitlines()[-1].endswith("report.html")


def test_report_html_is_self_contained(store, encoder_resize, tmp_path):
    a = analyze(load_store(store[0], encoder_resize[0]))
    write_report(a, tmp_path, formats=("png",))
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 5  # top configs, 2 radars, 2 delta charts
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not re.search(r'src="(?!data:)', page)  # nothing fetched from elsewhere
    assert "<b>" in page and "paired Student t-test" in page and "Holm-adjusted" in page


def test_failed_render_leaves_no_report(store, encoder_resize, tmp_path, monkeypatch):
    a = analyze(load_store(store[0], encoder_resize[0]))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("analysis.figures.deltas", boom)
    with pytest.raises(RuntimeError):
        write_report(a, tmp_path / "out", formats=("png",))
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # staging folder removed too


def test_report_is_logged_to_the_sweep_parent(store, encoder_resize, tmp_path, capsys):
    name, sweep_id, parent = encoder_resize
    code = main(["--tracking-uri", store[0], "--experiment", name, "--sweep-id", sweep_id,
                 "--out", str(tmp_path), "--no-pdf", "--log-zscores"])
    assert code == 0
    client = MlflowClient(store[0])
    logged = {Path(f.path).name for f in client.list_artifacts(parent, ARTIFACT_PATH)}
    assert {"report.html", "radar_encoder.png", "summary.csv"} <= logged
    assert "zscore_mean" in client.get_run(parent).data.tags[NOTE_TAG]
    job = load_store(store[0], name).runs["run"].iloc[0]
    assert ZSCORE_METRIC in client.get_run(job).data.metrics
    assert "logged" in capsys.readouterr().out


def test_cli_errors_exit_nonzero_and_write_nothing(store, encoder_resize, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--tracking-uri", store[0], "--experiment", "nope", "--out", str(out)]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    assert main(["--tracking-uri", store[0], "--experiment", encoder_resize[0], "--out", str(out),
                 "--baseline", "encoder=vit"]) == 2
    assert "options of encoder: clip, dinosiglip, siglip" in capsys.readouterr().err
    assert main(["--results-csv", str(tmp_path / "x.csv"), "--out", str(out)]) == 2
    assert "--by" in capsys.readouterr().err
    assert not out.exists()


def test_log_to_parent_without_a_parent_fails_before_writing(store, make_sweep, tmp_path,
                                                             capsys):
    name, _, parent = make_sweep({"encoder": ["clip", "siglip"]}, [0], extras=False)
    client = MlflowClient(store[0])
    client.set_tag(parent, "vlm_sweeps.kind", "not-a-sweep")
    out = tmp_path / "out"
    assert main(["--tracking-uri", store[0], "--experiment", name, "--out", str(out),
                 "--log-to-parent"]) == 2
    assert "no sweep parent run" in capsys.readouterr().err and not out.exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    with pytest.raises(AnalysisError, match="is a file"):
        write_report(analyze(load_store(store[0], name)), a_file)
