"""A planted effect of known size, found in real tiny runs: the synthetic world's synth_shape
(data/synthetic.py) cannot be answered after `naive` resizing (its pictures are then as often one
answer as the other: 50 %), while `letterbox` keeps the aspect ratio that decides it. Eight real runs
through the CLI (resize=naive,letterbox x seed=0,1,2,3, trained on the shape family alone, a budget of
seconds each) and `python -m analysis` on their store: naive is worse on synth_shape after Holm's
correction, by about what the construction says, and an A/A check of the same runs flags nothing."""

from __future__ import annotations

import pytest

from analysis import analyze, load_store
from analysis.calibration import aa_check
from tests.integration.conftest import run_cli

ONLY_SHAPES = ["data.synthetic.tasks.vqa=0", "data.synthetic.tasks.count=0", "data.synthetic.tasks.spatial=0",
               "data.synthetic.tasks.pope=0", "data.synthetic.tasks.ref=0", "data.synthetic.tasks.text=0.01",
               "data.synthetic.tasks.margin=0", "data.synthetic.tasks.fine=0", "data.synthetic.tasks.text_only=0.01"]
BUDGET = ["data.synthetic.n_align=16", "data.synthetic.n_finetune=2000", "data.synthetic.n_eval=150",
          "benchmarks.suite=[synth_shape]", "run.progress=false"]
ROW = ("resize", "naive", "synth_shape")


@pytest.fixture(scope="module")
def shape_sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("planted")
    args = ["-m", "vlm_sweeps.run", "-m", "resize=naive,letterbox", "seed=0,1,2,3", *ONLY_SHAPES, *BUDGET]
    out = run_cli(args, cwd, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return cwd, f"sqlite:///{cwd / 'mlflow.db'}"


def test_analysis_finds_the_planted_shape_effect(shape_sweep):
    cwd, uri = shape_sweep
    a = analyze(load_store(uri))
    row = a.comparisons.set_index(["axis", "option", "metric"]).loc[ROW]
    assert row["n_pairs"] == 4  # one pair per seed: no other axis varies
    options = a.options["resize"].set_index("resize")["synth_shape"]
    # naive can do no better than chance (50 %) by construction; letterbox learns the shapes
    assert abs(options["naive"] - 50) < 10, options
    assert options["letterbox"] > 70, options
    assert row["mean_delta"] < -15 and row["verdict"] == "worse", row
    # Holm over (synth_shape, zscore_mean) x 2 directions; the raw p is kept beside it
    assert row["p_less"] <= row["p_adjusted"] < a.alpha

    out = run_cli(["-m", "analysis", "--tracking-uri", uri, "--out", str(cwd / "report"), "--no-pdf"], cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resize: naive worse than letterbox on synth_shape" in out.stdout
    assert (cwd / "report" / "radar_resize.png").stat().st_size > 1000
    assert "synth_shape" in (cwd / "report" / "verdicts.md").read_text()


def test_the_same_runs_pass_an_a_a_check(shape_sweep):
    _, uri = shape_sweep
    result = aa_check(load_store(uri), resamples=50)
    assert result.share_clean >= 0.95, result.false_verdicts
