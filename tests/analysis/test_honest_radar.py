"""Radar charts that do not exaggerate (issue: a 1.8-point spread filled the whole radius): spokes
anchored at a floor that means something, min-max only on request, undecided spokes marked; and
what the store reads as a benchmark, a floor, a study section."""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from analysis import analyze, load_store, write_report
from analysis.figures import INNER, _spoke_label, radii, spoke_range
from analysis.floors import Floor, floors
from analysis.results import Results
from analysis.sections import split_sections
from vlm_sweeps import naming


def _log(client: MlflowClient, exp: str, params: dict, metrics: dict, tags: dict | None = None) -> str:
    run = client.create_run(exp, tags={naming.TAG_KIND: naming.KIND_JOB,
                                       naming.TAG_SIGNATURE: uuid.uuid4().hex[:12], **(tags or {})})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture(scope="module")
def floored(store):
    """Two resize options; synth_pope has a blind control and a chance level, synth_count only a
    chance level, synth_vqa neither; every run also logs a visual-token count and timings."""
    client = MlflowClient(store[0])
    name = f"floors-{uuid.uuid4().hex[:6]}"
    exp = client.create_experiment(name)
    for resize, gain in (("letterbox", 0.0), ("naive", 0.01)):
        _log(client, exp, {"encoder": "clip", "resize": resize, "seed": 0},
             {"synth_vqa/accuracy": 0.60 + gain, "synth_count/accuracy": 0.55, "synth_count/chance": 0.2,
              "synth_pope/accuracy": 0.58 + gain, "synth_pope/chance": 0.5, "blind/synth_pope/accuracy": 0.54,
              "blind/synth_pope/f1": 0.3, naming.VISUAL_TOKENS: 49.0, "time/job_s": 80.0})
    return load_store(store[0], name)


def test_run_facts_and_controls_are_not_benchmarks(floored):
    assert sorted(floored.benchmarks) == ["synth_count", "synth_pope", "synth_vqa"]


def test_floors_prefer_the_blind_control_then_chance(floored):
    got = floors(floored)
    assert got["synth_pope"] == Floor(pytest.approx(54.0), "blind")
    assert got["synth_count"] == Floor(pytest.approx(20.0), "chance")
    assert got["synth_vqa"] == Floor(0.0, "zero")


def test_spokes_run_from_the_floor_to_the_best_option():
    """Options at 50.0 and 51.8 on a task whose blind control scores 50: the radius shows 1.8
    points of a 1.8-point gain, not noise stretched min-max; a 40-point gain beside it is not
    shrunk; min-max (on request) stretches any spread to the whole radius."""
    scores = pd.DataFrame({"count": [50.0, 51.8], "shape": [50.0, 90.0]})
    fl = {"count": Floor(50.0, "blind"), "shape": Floor(50.0, "chance")}
    lo, hi = spoke_range(scores, "floor", fl)
    r = radii(scores, lo, hi)
    assert r["count"].tolist() == pytest.approx([INNER, 1.0])  # floor at the inner ring, best outside
    assert r["shape"].tolist() == pytest.approx([INNER, 1.0])
    lo, hi = spoke_range(scores, "percent")
    r = radii(scores, lo, hi)
    assert r["count"].iloc[1] - r["count"].iloc[0] == pytest.approx((1 - INNER) * 0.018)
    lo, hi = spoke_range(pd.DataFrame({"count": [48.7, 52.0]}), "minmax")
    assert (lo["count"], hi["count"]) == (48.7, 52.0)
    # a spoke whose best option does not clear its floor sits at the floor, not at the outer ring
    lo, hi = spoke_range(pd.DataFrame({"ref": [0.3, 0.2]}), "floor", {"ref": Floor(1.0, "blind")})
    assert radii(pd.DataFrame({"ref": [0.3]}), lo, hi)["ref"].iloc[0] < INNER


def test_spoke_labels_state_the_scale_and_mark_undecided_spokes():
    assert _spoke_label("synth_pope", 54.0, 60.0, "floor", {"synth_pope": Floor(54.0, "blind")}, False) \
        == "synth_pope\nblind 54.0 → best 60.0"
    assert _spoke_label("synth_vqa", 0.0, 61.0, "floor", {}, True) == "synth_vqa\n0 → best 61.0\nnot significant"
    assert "min 48.7 – max 52.0" in _spoke_label("synth_count", 48.7, 52.0, "minmax", None, False)


def test_undecided_spokes_follow_the_corrected_verdicts(floored, tmp_path):
    a = analyze(floored)
    assert a.undecided("resize") == floored.benchmarks  # one pair: nothing decided
    files = {p.name for p in write_report(a, tmp_path, ("png",), radar_scale="minmax")}
    assert {"radar_resize.png", "verdicts.md", "comparisons.csv"} <= files
    table = pd.read_csv(tmp_path / "comparisons.csv")
    assert {"p_greater", "p_less", "p_adjusted", "pairs_needed", "seeds_needed"} <= set(table.columns)
    assert set(table["verdict"]) == {"underpowered (n=1)", "no difference"}  # synth_count: equal


def _study() -> Results:
    """A study: the baseline (clip/letterbox/llama2), section 4.2 changes encoder or resize,
    section 4.3 the llm; two seeds each."""
    rows = []
    experiments = [("one-stage", "4.1", "clip", "letterbox", "llama2"),
                   ("siglip", "4.2", "siglip", "letterbox", "llama2"),
                   ("naive", "4.2", "clip", "naive", "llama2"),
                   ("crop", "4.2", "clip", "crop", "llama2"),
                   ("mistral", "4.3", "clip", "letterbox", "mistral")]
    for exp, section, enc, rs, llm in experiments:
        for seed in ("0", "1"):
            rows.append({"experiment": exp, "section": section, "encoder": enc, "resize": rs,
                         "llm": llm, "seed": seed, "x": 50.0 + len(exp) + int(seed)})
    frame = pd.DataFrame(rows)
    frame.insert(0, "run", [f"r{i}" for i in range(len(frame))])
    return Results(frame, ["encoder", "resize", "llm"], ["x"], seed="seed")


def test_a_study_reports_section_by_section(tmp_path):
    parts = dict(split_sections(_study()))
    assert list(parts) == ["4.2", "4.3"]  # 4.1 holds only the baseline: nothing of its own varies
    assert set(parts["4.2"].runs["experiment"]) == {"one-stage", "siglip", "naive", "crop"}
    assert parts["4.2"].axes == ["encoder", "resize"] and parts["4.3"].axes == ["llm"]
    assert parts["4.2"].options("resize")[0] == "letterbox"  # the baseline's, not the first by name
    write_report(analyze(_study()), tmp_path, ("png",))
    page = (tmp_path / "report.html").read_text()
    assert "Study section 4.2" in page and "Study section 4.3" in page
    assert (tmp_path / "section_4.3_summary.csv").exists()
