"""A FINISHED run is evaluated again only on its own final weights. Two tracking stores used from
one paths.root share the checkpoint folder: when the other store's run of the same signature
trains there (here: half-trained, it failed), re-evaluating the first run uses the checkpoint set
aside for it, and without that checkpoint it refuses, naming both runs, and logs nothing."""

from __future__ import annotations

import shutil

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import SMALL, compose
from tests.integration.conftest import run_cli
from vlm_sweeps import naming
from vlm_sweeps.job import run_job

pytestmark = pytest.mark.integration

JOB = SMALL + ["data.synthetic.n_finetune=32", "run.checkpoint_every=1"]
FIRST = "benchmarks.suite=[synth_vqa]"
LARGER = "benchmarks.suite=[synth_vqa,synth_count]"


def _job(store, root, *extra):
    return compose(JOB + [f"tracking.uri={store}", *extra], root=root)


def _snapshot(client, run_id):
    run = client.get_run(run_id)
    artifacts = sorted(f.path for f in client.list_artifacts(run_id, "predictions"))
    history = {k: len(client.get_metric_history(run_id, k)) for k in run.data.metrics}
    return run.info.status, dict(run.data.metrics), dict(run.data.tags), artifacts, history


def test_a_finished_run_is_evaluated_on_its_own_weights_or_not_at_all(tmp_path, clean_env):
    from vlm_sweeps.evaluate import EvaluateError, evaluate_run

    root = tmp_path / "root"
    store_a, store_b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    a = run_job(_job(store_a, root, FIRST))
    folder = root / "runs" / a.signature
    own = shutil.copy(folder / "checkpoint.pt", tmp_path / "own_a.pt")  # run A's final weights, for reference

    # store b, same paths.root, same signature: its run trains a little, then fails, leaving its
    # half-trained checkpoint where A's was (A's is set aside, named after A)
    with pytest.raises(RuntimeError, match="injected failure"):
        run_job(_job(store_b, root, FIRST, "run.fail_at_step=2"))
    b_id = torch.load(folder / "checkpoint.pt", weights_only=True)["run_id"]
    assert b_id != a.run_id and (folder / f"checkpoint.{a.run_id}.pt").is_file()

    # re-running A's job with a larger suite evaluates the added benchmark on A's own weights
    larger = run_job(_job(store_a, root, LARGER))
    assert larger.skipped and larger.run_id == a.run_id and larger.evaluated == ["synth_count"]
    client = MlflowClient(store_a)
    logged = client.get_run(a.run_id).data.metrics
    assert logged[naming.headline_metric("synth_vqa")] == a.metrics[naming.headline_metric("synth_vqa")]
    # evaluating A's own weights (the copy) gives the same figures, from the very same predictions:
    # the prediction cache is keyed by the weights, so nothing is generated again
    direct = evaluate_run(compose([f"eval.run_id={a.run_id}", f"eval.checkpoint={own}", f"tracking.uri={store_a}",
                                   f"paths.root={root}", LARGER, "run.progress=false"]))
    assert direct.generated == 0 and direct.total > 0
    assert direct.metrics == {k: logged[k] for k in direct.metrics}
    assert len(client.get_metric_history(a.run_id, naming.headline_metric("synth_count"))) == 1

    # without A's own checkpoint: a one-line error naming both runs and what to do; A is untouched
    (folder / f"checkpoint.{a.run_id}.pt").unlink()
    before = _snapshot(client, a.run_id)
    args = ["-m", "vlm_sweeps.run", *JOB, f"tracking.uri={store_a}", f"paths.root={root}",
            "benchmarks.suite=[synth_vqa,synth_pope]"]
    out = run_cli(args, tmp_path)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in out.stderr
    assert a.run_id in errors[0] and b_id in errors[0] and "FINISHED" in errors[0]
    assert f"eval.run_id={a.run_id} eval.checkpoint=PATH" in errors[0] and "paths.root" in errors[0]
    # python -m vlm_sweeps.evaluate refuses the same way
    with pytest.raises(EvaluateError, match=f"run {a.run_id} is FINISHED.*run {b_id}"):
        evaluate_run(compose([f"eval.run_id={a.run_id}", f"tracking.uri={store_a}", f"paths.root={root}",
                              "benchmarks.suite=[synth_pope]", "run.progress=false"]))
    # a checkpoint that does not name its run (an older one) has an unknown owner: refused too
    state = torch.load(own, weights_only=True)
    del state["run_id"]
    torch.save(state, folder / f"checkpoint.{a.run_id}.pt")
    with pytest.raises(EvaluateError, match=f"run {a.run_id} is FINISHED.*unknown run"):
        evaluate_run(compose([f"eval.run_id={a.run_id}", f"tracking.uri={store_a}", f"paths.root={root}",
                              "benchmarks.suite=[synth_pope]", "run.progress=false"]))
    assert _snapshot(client, a.run_id) == before  # nothing was logged into A
