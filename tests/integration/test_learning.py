"""Learning is real: the default tiny model, trained by the job's own recipe, beats its blind
control (every image blank: the language prior alone) by a clear margin on questions whose
answer is in the image. If the image never reached the LLM, both would score the same."""

import pytest

from tests.conftest import compose
from vlm_sweeps import job

MARGIN = 0.15  # absolute accuracy points; the blind control of a 50/50 yes/no task scores ~0.5


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
    for metric in ("synth_vqa/accuracy", "synth_pope/accuracy"):
        assert seen[metric] >= blind[metric] + MARGIN, (metric, seen[metric], blind[metric])
