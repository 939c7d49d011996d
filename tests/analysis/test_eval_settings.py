"""Runs scored under different evaluation settings are never ranked together silently
(analysis/settings.py): a sweep in which one run was evaluated again on more examples is refused
with that run named, or split into one benchmark per setting; runs logged before settings were
recorded read as before, and a score evaluated again without a record is caught."""

from __future__ import annotations

import json
import time

import pytest
from mlflow import MlflowClient

from analysis import analyze, load_store, write_report
from analysis.cli import main
from analysis.results import AnalysisError
from vlm_sweeps import naming

GRID = {"encoder": ["clip", "siglip"]}


def _runs(uri: str, experiment: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    query = f"tags.`{naming.TAG_KIND}` = 'job' and attributes.status = 'FINISHED'"
    runs = client.search_runs([exp.experiment_id], query)
    return client, sorted(runs, key=lambda r: (r.data.params["encoder"], r.data.params["seed"], r.info.start_time))


def _setting(n: int, score: float, **extra) -> str:
    return json.dumps({"n": n, "max_examples": n, "version": "1+world6", "blind": False, "max_new_tokens": 6,
                       "harness": 1, "dtype": "fp32", "examples": "abc", "score": score, **extra})


def _record_all(client, runs, n: int = 8) -> None:
    """Every run's synth_vqa as a job of today records it: n examples, the score it logged."""
    for run in runs:
        key = naming.headline_metric("synth_vqa")
        client.set_tag(run.info.run_id, naming.TAG_EVAL_SETTING + "synth_vqa", _setting(n, run.data.metrics[key]))


def _evaluate_again(client, run, n: int | None, value: float = 0.99) -> None:
    """synth_vqa of `run` evaluated again on its checkpoint, after the run ended: a new value at its
    step; with `n`, the setting recorded as the job does (eval/settings.py)."""
    client.log_metric(run.info.run_id, naming.headline_metric("synth_vqa"), value, int(time.time() * 1000) + 5, 0)
    if n is not None:
        client.set_tag(run.info.run_id, naming.TAG_EVAL_SETTING + "synth_vqa", _setting(n, value))


def test_one_run_evaluated_on_more_examples_is_refused_and_named(store, make_sweep, tmp_path, capsys):
    uri = store[0]
    experiment, _, _ = make_sweep(GRID, [0, 1], extras=False)
    client, runs = _runs(uri, experiment)
    _record_all(client, runs)
    before = load_store(uri, experiment)  # all alike: ranked, and the report says on what
    assert before.eval_settings["synth_vqa"].startswith("n=8, max_examples=8, version=1+world6")
    assert before.eval_settings["synth_ref"] == "not recorded"  # no tag, no param: nothing to hold against them
    _evaluate_again(client, runs[0], 16)

    with pytest.raises(AnalysisError) as err:
        load_store(uri, experiment)
    text = str(err.value)
    assert "synth_vqa (synth_vqa/accuracy) was scored with different n, max_examples" in text
    assert f"n=16, max_examples=16: 1 run(s): {runs[0].info.run_name} ({runs[0].info.run_id[:8]})" in text
    assert "n=8, max_examples=8: 3 run(s)" in text and "--mixed-settings split" in text
    # the command line: exit 2, the same message, nothing written
    assert main(["--tracking-uri", uri, "--experiment", experiment, "--out", str(tmp_path / "r"), "--no-pdf"]) == 2
    assert "was scored with different n, max_examples" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()

    # split: each setting its own benchmark, compared within itself; the report says so
    split = load_store(uri, experiment, mixed_settings="split")
    wide, narrow = "synth_vqa [n=16, max_examples=16]", "synth_vqa [n=8, max_examples=8]"
    assert "synth_vqa" not in split.benchmarks and {wide, narrow} <= set(split.benchmarks)
    assert split.runs[wide].notna().sum() == 1 and split.runs[narrow].notna().sum() == 3
    assert split.runs.loc[split.runs["run"] == runs[0].info.run_id, wide].iloc[0] == pytest.approx(99.0)
    assert split.metric_names[wide] == "synth_vqa/accuracy"
    files = write_report(analyze(split), tmp_path / "split", ("png",))
    page = (tmp_path / "split" / "report.html").read_text()
    assert "synth_vqa was scored with different n, max_examples: compared only within each setting" in page
    assert "eval_settings.csv" in {f.name for f in files}
    assert main(["--tracking-uri", uri, "--experiment", experiment, "--out", str(tmp_path / "cli"), "--no-pdf",
                 "--mixed-settings", "split"]) == 0
    assert "NOTE: synth_vqa was scored with different n, max_examples" in capsys.readouterr().out

    # the other runs evaluated alike: one setting again, ranked together
    for run in runs[1:]:
        _evaluate_again(client, run, 16, 0.5)
    after = load_store(uri, experiment)
    assert after.eval_settings["synth_vqa"].startswith("n=16, max_examples=16") and not after.setting_notes


def test_scores_evaluated_again_without_a_record_read_unknown(store, make_sweep):
    uri = store[0]
    experiment, _, _ = make_sweep(GRID, [0], extras=False)
    client, runs = _runs(uri, experiment)
    for run in runs:  # runs of before the setting tag: the first evaluation's slim size is the param
        client.log_param(run.info.run_id, "benchmarks.max_examples", "8")
    assert load_store(uri, experiment).eval_settings["synth_vqa"] == "max_examples=8"
    # python -m vlm_sweeps.evaluate benchmarks.max_examples=16 before it recorded settings: a new value,
    # logged after the run ended, and neither tag
    _evaluate_again(client, runs[0], None)
    with pytest.raises(AnalysisError, match=r"max_examples=unknown: 1 run\(s\)"):
        load_store(uri, experiment)
    # a job's later evaluation of old (the slim-size tag) says what it was
    client.set_tag(runs[0].info.run_id, naming.TAG_EVALUATED + "synth_vqa", "8")
    assert load_store(uri, experiment).eval_settings["synth_vqa"] == "max_examples=8"

    # a recorded setting whose score is no longer the run's: evaluated again, unrecorded
    _record_all(client, _runs(uri, experiment)[1])
    assert load_store(uri, experiment).eval_settings["synth_vqa"].startswith("n=8")
    _evaluate_again(client, runs[1], None, 0.123)
    with pytest.raises(AnalysisError, match="max_examples=unknown"):
        load_store(uri, experiment)


def test_a_setting_recorded_by_only_some_runs_is_not_held_against_the_others(store, make_sweep):
    uri = store[0]
    experiment, _, _ = make_sweep(GRID, [0, 1], extras=False)
    client, runs = _runs(uri, experiment)
    _record_all(client, runs[:2])  # the other two logged before settings were recorded
    results = load_store(uri, experiment)
    assert "synth_vqa" in results.benchmarks and results.eval_settings["synth_vqa"].startswith("n=8")
    # but another generation budget is another setting
    key = naming.headline_metric("synth_vqa")
    client.set_tag(runs[1].info.run_id, naming.TAG_EVAL_SETTING + "synth_vqa",
                   _setting(8, runs[1].data.metrics[key], max_new_tokens=32))
    with pytest.raises(AnalysisError, match="different max_new_tokens"):
        load_store(uri, experiment)
