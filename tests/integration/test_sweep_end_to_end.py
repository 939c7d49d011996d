"""The default 6-run sweep end to end: CLI -> training -> evaluation -> MLflow -> analysis."""

import itertools

from mlflow.tracking import MlflowClient

from tests.conftest import DEFAULT_SUITE
from tests.integration.conftest import run_cli
from vlm_sweeps import naming

BENCHMARKS = DEFAULT_SUITE


def job_runs(uri):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(naming.DEFAULT_EXPERIMENT)
    return client, client.search_runs([exp.experiment_id], filter_string=f"tags.`{naming.TAG_KIND}` = 'job'")


def test_sweep_logs_six_finished_runs_with_every_benchmark(small_sweep):
    client, runs = job_runs(small_sweep.uri)
    assert len(runs) == 6
    assert {r.info.status for r in runs} == {"FINISHED"}
    pairs = {(r.data.params["encoder"], r.data.params["resize"]) for r in runs}
    assert pairs == set(itertools.product(["clip", "siglip", "dinosiglip"], ["naive", "letterbox"]))
    for run in runs:
        for bench in BENCHMARKS:
            value = run.data.metrics[naming.headline_metric(bench)]
            assert 0.0 <= value <= 1.0
        assert {"optimization", "llm", "epochs", "data", "encoder.image_size"} <= set(run.data.params)
        assert len(client.get_metric_history(run.info.run_id, naming.TRAIN_LOSS)) >= 1
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "predictions"} <= artifacts


def test_sweep_jobs_share_one_parent_run_and_sweep_id(small_sweep):
    client, runs = job_runs(small_sweep.uri)
    sweep_ids = {r.data.tags[naming.TAG_SWEEP_ID] for r in runs}
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(sweep_ids) == 1 and len(parents) == 1
    parent = client.get_run(parents.pop())
    assert parent.data.tags[naming.TAG_KIND] == naming.KIND_SWEEP
    assert parent.info.status == "FINISHED"


def test_running_the_same_sweep_again_skips_every_finished_job(small_sweep):
    assert small_sweep.second.stdout.count("skipped (already finished)") == 6
    _, runs = job_runs(small_sweep.uri)
    assert len(runs) == 6  # no new runs


def test_signatures_are_distinct_and_identify_the_configs(small_sweep):
    _, runs = job_runs(small_sweep.uri)
    assert len({r.data.tags[naming.TAG_SIGNATURE] for r in runs}) == 6


def test_analysis_writes_radar_charts_for_the_varying_axes(small_sweep, tmp_path):
    out = run_cli(["-m", "analysis", "--tracking-uri", small_sweep.uri, "--out", str(tmp_path / "report")],
                  small_sweep.cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    files = {p.name for p in (tmp_path / "report").iterdir()}
    for axis in ("encoder", "resize"):
        assert f"radar_{axis}.png" in files and f"radar_{axis}.pdf" in files
    assert not any("radar_llm" in f for f in files)  # llm did not vary
    assert {"summary.csv", "summary.md", "report.html"} <= files


def test_the_sweep_ends_with_where_its_comparison_is_in_mlflow(small_sweep):
    """The parent run's page and a compare view of all six jobs, in the routes of MLflow's UI
    (mlflow/server/js: `/experiments/:id/runs/:runUuid`, `/compare-runs?runs=[...]&experiments=[...]`)."""
    import json
    from urllib.parse import unquote

    client, runs = job_runs(small_sweep.uri)
    out = small_sweep.first.stdout
    assert f"mlflow ui --backend-store-uri sqlite:///{small_sweep.cwd / 'mlflow.db'}" in out
    parent = runs[0].data.tags["mlflow.parentRunId"]
    experiment = runs[0].info.experiment_id
    assert f"the sweep's parent run: http://127.0.0.1:5000/#/experiments/{experiment}/runs/{parent}" in out
    link = next(line for line in out.splitlines() if "its 6 jobs compared: " in line).split("compared: ")[1]
    query = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    assert link.startswith("http://127.0.0.1:5000/#/compare-runs?")
    assert sorted(json.loads(unquote(query["runs"]))) == sorted(r.info.run_id for r in runs)
    assert json.loads(unquote(query["experiments"])) == [experiment]
