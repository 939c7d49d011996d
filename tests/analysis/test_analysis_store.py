"""Loading a real MLflow store shaped like the jobs' output."""

from __future__ import annotations

import pytest

from analysis import AnalysisError, analyze, load_store


def test_finished_jobs_with_varying_axes_and_headline_benchmarks(store, encoder_resize):
    name, _, parent = encoder_resize
    res = load_store(store[0], name)
    assert res.axes == ["encoder", "resize"]  # llm, epochs... are constant
    assert res.options("encoder") == ["clip", "dinosiglip", "siglip"]  # no "never_finished"
    assert sorted(res.benchmarks) == ["synth_pope", "synth_ref", "synth_vqa"]  # no f1, no train/*
    assert res.metric_names["synth_ref"] == "synth_ref/acc_iou50"
    assert len(res.runs) == 12  # 3 x 2 x 2 seeds; the superseded duplicate is dropped
    assert res.runs["synth_vqa"].min() > 1.0  # fractions became percent
    assert res.constants["llm"] == "llama2" and res.seed == "seed"
    assert res.parent_run_ids == [parent]


def test_marginal_means_recover_the_encoder_gain(store, encoder_resize):
    a = analyze(load_store(store[0], encoder_resize[0]))
    vqa = a.options["encoder"].set_index("encoder")["synth_vqa"]
    # 40 + encoder gain (0, 5, 10) + mean over resize (0, +2) = 1 + mean over seeds (0, 0.1)
    for enc, gain in {"clip": 0.0, "siglip": 5.0, "dinosiglip": 10.0}.items():
        assert vqa[enc] == pytest.approx(40 + gain + 1 + 0.05)
    assert a.summary.iloc[0]["label"] == "encoder=dinosiglip, resize=naive"


def test_sweep_id_and_by_restrict_what_is_read(store, encoder_resize):
    name, sweep_id, _ = encoder_resize
    assert len(load_store(store[0], name, sweep_id=sweep_id).runs) == 12
    res = load_store(store[0], name, axes=["encoder"])
    assert res.axes == ["encoder"] and "resize" in res.context  # pairs still match on resize
    with pytest.raises(AnalysisError, match="no FINISHED job runs.*sweep id 'nope'"):
        load_store(store[0], name, sweep_id="nope")
    with pytest.raises(AnalysisError, match="not an axis"):
        load_store(store[0], name, axes=["colour"])


def test_unknown_experiment_names_the_ones_there(store, encoder_resize):
    with pytest.raises(AnalysisError) as err:
        load_store(store[0], "no-such-experiment")
    assert "unknown experiment 'no-such-experiment'" in str(err.value)
    assert encoder_resize[0] in str(err.value) and "--experiment" in str(err.value)


def test_empty_experiment_and_missing_store_are_clear_errors(store, tmp_path):
    from mlflow import MlflowClient

    MlflowClient(store[0]).create_experiment("empty-one", artifact_location=str(tmp_path))
    with pytest.raises(AnalysisError, match="no FINISHED job runs.*holds no job runs"):
        load_store(store[0], "empty-one")
    missing = tmp_path / "nothing.db"
    with pytest.raises(AnalysisError, match="no MLflow store at"):
        load_store(f"sqlite:///{missing}")
    assert not missing.exists()  # reading must not create a store
