"""`python -m analysis` reads one sweep by default: the latest, with every job of it (those it
trained and those an earlier sweep had finished, from its comparison table), and says so; more only
when asked (`--all-sweeps`), saying what it pooled."""

from __future__ import annotations

import time

from mlflow import MlflowClient

from analysis.cli import main
from tests.analysis.conftest import DEFAULTS, _log_run, additive_scores, fill_sweep
from vlm_sweeps import naming


def test_the_latest_sweep_with_its_reused_jobs_is_read_by_default(store, tmp_path, capsys):
    uri, _ = store
    grid = {"encoder": ["clip", "siglip", "dinosiglip"], "resize": ["letterbox", "naive"]}
    name, first, _ = fill_sweep(store, grid, [0], additive_scores, extras=False)  # 6 jobs
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name).experiment_id
    earlier = {r.data.params["encoder"] + "/" + r.data.params["resize"]: r.data.tags[naming.TAG_SIGNATURE]
               for r in client.search_runs([exp], f"tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'")}
    time.sleep(0.01)
    # a later sweep: one job of its own, two reused from the first (skipped: FINISHED there)
    parent = client.create_run(exp, tags={naming.TAG_KIND: naming.KIND_SWEEP, naming.TAG_SWEEP_ID: "later"})
    config = dict(DEFAULTS, encoder="clip", resize="letterbox", seed="3")
    _log_run(client, exp, config, additive_scores(config), {naming.TAG_SWEEP_ID: "later",
                                                            naming.TAG_SIGNATURE: "own-signature"})
    jobs = ["own-signature", earlier["siglip/letterbox"], earlier["dinosiglip/letterbox"]]
    client.log_table(parent.info.run_id, {"signature": jobs, "status": ["FINISHED"] * 3}, "comparison.json")
    client.set_terminated(parent.info.run_id)

    args = ["--tracking-uri", uri, "--experiment", name, "--no-pdf"]
    assert main([*args, "--out", str(tmp_path / "latest")]) == 0
    out = capsys.readouterr().out
    assert "sweep later (the latest; --sweep-id ID for another, --all-sweeps for every run): 3 FINISHED job runs" in out
    assert "3 runs, 3 configurations" in out
    assert main([*args, "--sweep-id", first, "--out", str(tmp_path / "first")]) == 0
    out = capsys.readouterr().out
    assert f"sweep {first}: 6 FINISHED job runs" in out and "6 runs, 6 configurations" in out
    assert main([*args, "--all-sweeps", "--out", str(tmp_path / "all")]) == 0
    out = capsys.readouterr().out
    assert f"all 7 FINISHED job runs of the store, from 2 sweep(s): {', '.join(sorted([first, 'later']))}" in out
