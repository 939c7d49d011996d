"""Ablations and studies through the real CLI: the ablation sweeper's 5 jobs around the baseline,
the comparison table on the sweep's parent run, the plan of a re-run, the Prismatic study listed at
full scale (dry run) and a representative part of it trained end to end at tiny scale."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import CONF, SMALL
from tests.integration.conftest import run_cli
from tests.launchers.test_study_presets import REGISTRY
from vlm_sweeps import naming

pytestmark = pytest.mark.integration

ABLATION = ["hydra/sweeper=ablation", "encoder=clip,siglip,dinosiglip", "resize=letterbox,naive,crop"]
# one experiment of each section, among them the two-stage reproduction, a fused encoder with naive
# resize, the mix without language-only data, a data mix and a Prism (2 epochs of the largest mix)
SUBSET = ["reproduction-llava-v15+7b", "one-stage+7b", "dinosiglip-384px-resize-naive+7b", "vicuna-no-cotraining+7b",
          "llava-lvis4v-lrv+7b", "prism-dinosiglip+7b"]


def runs_of(uri: str, kind: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(naming.DEFAULT_EXPERIMENT)
    return client, exp, client.search_runs([exp.experiment_id], filter_string=f"tags.`{naming.TAG_KIND}` = '{kind}'")


def comparison(client: MlflowClient, run_id: str, folder) -> list[dict]:
    """The sweep's comparison table (mlflow.log_table's JSON) as rows."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(client.download_artifacts(run_id, "comparison.json", str(folder))) as f:
        table = json.load(f)
    return [dict(zip(table["columns"], row)) for row in table["data"]]


def test_ablation_runs_the_baseline_once_plus_one_job_per_option(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "vlm_sweeps.run", "-m", *ABLATION, *SMALL, f"tracking.uri={uri}", f"paths.root={tmp_path}"]
    out = run_cli(args, tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "plan: 5 jobs, ablation around the baseline encoder=clip resize=letterbox; 0 of them FINISHED" in out.stdout
    client, exp, jobs = runs_of(uri, naming.KIND_JOB)
    assert sorted((r.data.params["encoder"], r.data.params["resize"]) for r in jobs) == sorted([
        ("clip", "letterbox"), ("siglip", "letterbox"), ("dinosiglip", "letterbox"), ("clip", "naive"),
        ("clip", "crop")])
    assert {r.info.status for r in jobs} == {"FINISHED"}
    assert {r.data.tags[naming.TAG_EXPERIMENT] for r in jobs} == {
        "baseline", "encoder=siglip", "encoder=dinosiglip", "resize=naive", "resize=crop"}
    # the dashboard: a model-training experiment, the sweep's comparison on its parent run
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    _, _, parents = runs_of(uri, naming.KIND_SWEEP)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    rows = comparison(client, parents[0].info.run_id, tmp_path)
    assert [r["experiment"] for r in rows] == ["baseline", "encoder=siglip", "encoder=dinosiglip", "resize=naive",
                                               "resize=crop"]
    assert {r["run_id"] for r in rows} == {r.info.run_id for r in jobs}
    suite = [naming.headline_metric(b) for b in yaml.safe_load((CONF / "benchmarks" / "synthetic.yaml").read_text())["suite"]]
    assert all(r["status"] == "FINISHED" and all(0 <= r[m] <= 1 for m in suite) for r in rows)
    assert set(naming.design_axes()) <= set(rows[0])
    # ... and the analysis report of its jobs, each option compared with the baseline's
    files = {a.path for a in client.list_artifacts(parents[0].info.run_id, "analysis")}
    assert {"analysis/report.html", "analysis/radar_encoder.png", "analysis/radar_resize.png",
            "analysis/comparisons.csv"} <= files, files
    comps = pd.read_csv(
        client.download_artifacts(parents[0].info.run_id, "analysis/comparisons.csv", str(tmp_path)))
    pairs = comps[comps["metric"] == "zscore_mean"][["axis", "baseline", "option", "n_pairs"]]
    assert sorted(map(tuple, pairs.to_numpy().tolist())) == [
        ("encoder", "clip", "dinosiglip", 1), ("encoder", "clip", "siglip", 1),
        ("resize", "letterbox", "crop", 1), ("resize", "letterbox", "naive", 1)]
    assert parents[0].data.tags["mlflow.note.content"].startswith("## Sweep analysis")

    again = run_cli(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "plan: 5 jobs, ablation around the baseline encoder=clip resize=letterbox; 5 of them FINISHED" \
        in again.stdout
    assert again.stdout.count("skipped (already finished)") == 5
    # nothing trained or evaluated again: no second parent run; the first one holds the comparison
    _, _, again_parents = runs_of(uri, naming.KIND_SWEEP)
    assert [p.info.run_id for p in again_parents] == [parents[0].info.run_id]


def test_the_papers_study_at_full_scale_lists_every_experiment(tmp_path):
    out = run_cli(["-m", "vlm_sweeps.run", "-m", "+study=prismatic", "scale=full", "run.dry_run=true",
                   f"paths.root={tmp_path}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"], tmp_path, seed=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"plan: {len(REGISTRY)} jobs, study prismatic at scale=full" in out.stdout
    listed = [line.split()[1] for line in out.stdout.splitlines() if line.strip()[:1].isdigit() and "  " in line]
    assert listed[:len(REGISTRY)] == list(REGISTRY)
    assert out.stdout.count("dry run: encoder=") == len(REGISTRY)  # each job printed its estimates
    assert not (tmp_path / "mlflow.db").exists()  # a dry run tracks nothing


def test_the_papers_study_at_tiny_scale_completes(tmp_path):
    """A representative part of `+study=prismatic` at tiny scale with small settings (the whole
    study, 48 jobs, takes about 5 minutes on 2 cores): one study file, in a folder of the user's,
    that keeps SUBSET of the paper's experiments."""
    experiments = yaml.safe_load((CONF / "study" / "prismatic.yaml").read_text())["study"]["experiments"]
    subset = [e for e in experiments if e["id"] in SUBSET]
    folder = tmp_path / "conf" / "study"
    folder.mkdir(parents=True)
    (folder / "prismatic_part.yaml").write_text("# @package _global_\n" + yaml.safe_dump(
        {"defaults": ["prismatic", "_self_"], "study": {"experiments": subset}}, sort_keys=False))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_cli(["-m", "vlm_sweeps.run", "-m", f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
                   "+study=prismatic_part", *SMALL, f"tracking.uri={uri}", f"paths.root={tmp_path}"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client, _, jobs = runs_of(uri, naming.KIND_JOB)
    assert {r.info.status for r in jobs} == {"FINISHED"} and len(jobs) == len(SUBSET)
    tags = {r.data.tags[naming.TAG_EXPERIMENT]: r for r in jobs}
    assert set(tags) == set(SUBSET)
    for name, run in tags.items():
        assert run.data.tags[naming.TAG_STUDY] == "prismatic"
        assert run.data.tags[naming.TAG_SECTION] == REGISTRY[name][0]
    assert tags["reproduction-llava-v15+7b"].data.params["optimization"] == "two_stage"
    assert tags["prism-dinosiglip+7b"].data.params["data"] == "synthetic_lvis4v_lrv"
    assert tags["prism-dinosiglip+7b"].data.params["epochs"] == "2.0"
    assert tags["vicuna-no-cotraining+7b"].data.params["data"] == "synthetic_no_language"
    _, _, parents = runs_of(uri, naming.KIND_SWEEP)
    assert parents[0].data.tags[naming.TAG_STUDY] == "prismatic"
    rows = comparison(client, parents[0].info.run_id, tmp_path)
    assert [(r["experiment"], r["section"]) for r in rows] == [(e["id"], e["section"]) for e in subset]
