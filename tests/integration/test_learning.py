"""Learning is real: the default tiny model, trained by the job's own recipe, beats its blind
control (every image blank: the language prior alone) by a stated margin on every benchmark of
the default synthetic suite, questions whose answer is in the image. If the image never reached
the LLM, both would score the same."""

import pytest

from tests.conftest import compose
from vlm_sweeps import job, naming

# Absolute points over the blind control, per benchmark of the default suite (300 questions each: a
# difference of two scores has a standard error of about 4 points near 50 %), about half of what was
# measured on this CPU build (seen vs blind): synth_vqa 0.607 vs 0.388, synth_count 0.693 vs 0.263,
# synth_spatial 0.740 vs 0.473, synth_shape 0.980 vs 0.437, synth_margin 0.670 vs 0.213, synth_fine
# 1.000 vs 0.493.
MARGIN = {"synth_vqa": 0.10, "synth_count": 0.20, "synth_spatial": 0.12, "synth_shape": 0.25,
          "synth_margin": 0.20, "synth_fine": 0.25}


@pytest.fixture(scope="session")
def trained_default(tmp_path_factory):
    cfg = compose(["run.progress=false"], root=tmp_path_factory.mktemp("learning"))
    s = job.setup(cfg)
    job.train(cfg, s, log_fn=lambda metrics, step: None)
    return cfg, s


def test_default_model_beats_its_blind_control(trained_default):
    cfg, s = trained_default
    seen, _ = job.evaluate(cfg, s, blind=False)
    blind, _ = job.evaluate(cfg, s, blind=True)
    assert set(MARGIN) == set(cfg.benchmarks.suite)  # every benchmark of the default suite has one
    for bench, margin in MARGIN.items():
        metric = naming.headline_metric(bench)
        assert seen[metric] >= blind[metric] + margin, (metric, seen[metric], blind[metric])
    # the control really is blind: two-way questions score near chance without the image
    for two_way in ("synth_spatial", "synth_fine"):
        assert abs(blind[naming.headline_metric(two_way)] - 0.5) < 0.1, (two_way, blind)
