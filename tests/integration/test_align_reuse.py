"""A shared align stage changes what a sweep costs, never what it computes: a job that loads
another job's align (and is interrupted in its finetune, and resumes) ends with exactly the
metrics and curves of the same job aligning itself; a job interrupted inside a shared align
resumes it into its own MLflow run."""

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import SMALL, compose, seed_store
from vlm_sweeps import naming
from vlm_sweeps.identity import align_signature
from vlm_sweeps.job import run_job

JOB = SMALL + ["optimization=two_stage", "run.log_every=1", "run.checkpoint_every=1", "eval.cache=false"]
SAME_ALIGN = SMALL + ["optimization=two_stage_full_finetune", "run.log_every=1", "eval.cache=false"]


def curve(client, run_id, name):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)]


@pytest.fixture()
def store(tmp_path, small_world, session_root, clean_env):
    """(tracking args for an experiment, its client); jobs share the session's world and tokenizer."""
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"

    def args(experiment: str) -> list[str]:
        return [f"tracking.uri={uri}", f"tracking.experiment={experiment}", f"paths.cache_dir={session_root / 'cache'}"]
    return args, MlflowClient(uri)


def test_reused_align_gives_what_aligning_itself_gives_also_after_a_resume(tmp_path, store):
    args, client = store
    own = run_job(compose(JOB + args("own") + ["run.share_align=false"], root=tmp_path / "own"))
    assert not list((tmp_path / "own" / "runs").glob("align-*"))  # sharing off: nothing shared

    first = run_job(compose(SAME_ALIGN + args("shared"), root=tmp_path / "shared"))  # trains the align
    # loads it; fails in its finetune (steps 3..9), then resumes from its own checkpoint at step 4
    with pytest.raises(RuntimeError, match="injected failure at step 5"):
        run_job(compose(JOB + args("shared") + ["run.fail_at_step=5"], root=tmp_path / "shared"))
    reused = run_job(compose(JOB + args("shared"), root=tmp_path / "shared"))
    assert client.get_run(reused.run_id).data.tags[naming.TAG_PREFIX + "resumed_from_step"] == "4"
    sig = align_signature(compose(JOB))
    assert (tmp_path / "shared" / "runs" / f"align-{sig}" / "align.pt").is_file()

    tags = {name: client.get_run(r.run_id).data.tags for name, r in
            (("own", own), ("first", first), ("reused", reused))}
    assert [tags[n][naming.TAG_ALIGN_SOURCE] for n in ("own", "first", "reused")] == ["trained", "trained", "reused"]
    assert {tags[n][naming.TAG_ALIGN_SIGNATURE] for n in tags} == {sig}

    assert reused.signature == own.signature and reused.metrics
    assert reused.metrics == own.metrics  # exactly: same weights, same RNG, same batches
    for name in (naming.TRAIN_LOSS, naming.TRAIN_LR):  # align curve replayed, finetune curve identical
        assert curve(client, reused.run_id, name) == curve(client, own.run_id, name)
    # the align's 2 steps, as the job that trained it logged them
    assert curve(client, reused.run_id, naming.TRAIN_LOSS)[:2] == curve(client, first.run_id, naming.TRAIN_LOSS)[:2]
    assert int(tags["reused"][naming.TAG_TOTAL_STEPS]) == int(tags["own"][naming.TAG_TOTAL_STEPS])


def test_interrupted_in_a_shared_align_resumes_it_into_the_same_run(tmp_path, store):
    args, client = store
    reference = run_job(compose(JOB + args("reference") + ["run.share_align=false"], root=tmp_path / "reference"))

    root = tmp_path / "interrupted"
    with pytest.raises(RuntimeError, match="injected failure at step 2"):  # the align has 2 steps
        run_job(compose(JOB + args("interrupted") + ["run.fail_at_step=2"], root=root))
    sig = align_signature(compose(JOB))
    folder = root / "runs" / f"align-{sig}"
    partial = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert partial["stage_step"] == 1 and not (folder / "align.pt").exists()

    resumed = run_job(compose(JOB + args("interrupted"), root=root))
    run = client.get_run(resumed.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[naming.TAG_PREFIX + "resumes"] == "1"
    assert run.data.tags[naming.TAG_ALIGN_SOURCE] == "trained"
    assert (folder / "align.pt").is_file() and not (folder / "checkpoint.pt").exists()
    assert resumed.metrics == reference.metrics
    assert curve(client, resumed.run_id, naming.TRAIN_LOSS) == curve(client, reference.run_id, naming.TRAIN_LOSS)
