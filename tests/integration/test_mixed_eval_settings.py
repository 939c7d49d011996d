"""Issue 23: real jobs, one evaluated again on more examples (the README's "Evaluating without
retraining"): analysis refuses to rank it against the others, naming it and both settings, until
the others are evaluated alike; then they are ranked, and the report says on what."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from analysis import load_store
from analysis.results import AnalysisError
from tests.conftest import SMALL, compose, seed_store
from vlm_sweeps import naming
from vlm_sweeps.job import run_job

pytestmark = pytest.mark.integration

# two tiny jobs in the session's world (small_world), two benchmarks, scored on 8 of its 12 evaluation
# examples; in-process, tracked from the job's process: ~2 s a training, <1 s an evaluation on a checkpoint
JOB = SMALL + ["benchmarks.suite=[synth_vqa,synth_count]", "tracking.process=false"]


def test_a_run_evaluated_on_more_examples_is_not_ranked_with_the_others(tmp_path, small_world, session_root,
                                                                         clean_env):
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"

    def job(encoder: str, max_examples: int):
        return run_job(compose(JOB + [f"tracking.uri={uri}", f"paths.cache_dir={session_root / 'cache'}",
                                      f"encoder={encoder}", f"benchmarks.max_examples={max_examples}"], root=tmp_path))

    clip, siglip = job("clip", 8), job("siglip", 8)
    assert load_store(uri).eval_settings["synth_vqa"].startswith("n=8, max_examples=8, version=1+world")

    again = job("clip", 12)  # evaluated on its checkpoint, nothing trains, logged into the same run
    assert again.run_id == clip.run_id and again.skipped and again.evaluated == ["synth_vqa", "synth_count"]
    run = MlflowClient(uri).get_run(clip.run_id)
    assert run.data.params["benchmarks.max_examples"] == "8"  # immutable: the first evaluation's
    setting = json.loads(run.data.tags[naming.TAG_EVAL_SETTING + "synth_vqa"])
    assert (setting["n"], setting["max_examples"], setting["blind"]) == (12, 12, False)
    assert setting["score"] == run.data.metrics[naming.headline_metric("synth_vqa")]

    with pytest.raises(AnalysisError) as err:
        load_store(uri)
    text = str(err.value)
    for bench in ("synth_vqa", "synth_count"):
        assert f"{bench} ({naming.headline_metric(bench)}) was scored with different n, max_examples" in text
    assert f"n=12, max_examples=12: 1 run(s): {run.info.run_name} ({clip.run_id[:8]})" in text
    assert "n=8, max_examples=8: 1 run(s): " in text and siglip.run_id[:8] in text

    job("siglip", 12)  # the other one evaluated alike: ranked together again
    results = load_store(uri)
    assert results.benchmarks == ["synth_vqa", "synth_count"] and not results.setting_notes
    assert results.eval_settings["synth_vqa"].startswith("n=12, max_examples=12")
