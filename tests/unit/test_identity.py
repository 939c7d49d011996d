"""Signatures: same config -> same signature; paths/tracking/run knobs do not count; axes do."""

from tests.conftest import compose
from vlm_sweeps.identity import signature


def test_signature_ignores_paths_tracking_and_runtime_knobs(tmp_path):
    base = signature(compose([]))
    assert base == signature(compose([], root=tmp_path))
    assert base == signature(compose(["tracking.uri=sqlite:///x.db", "run.num_workers=3", "run.progress=false"]))


def test_every_axis_changes_the_signature():
    base = signature(compose([]))
    for override in ["encoder=siglip", "resize=naive", "optimization=two_stage", "llm=vicuna_v15", "epochs=2",
                     "epochs=1.5", "data=synthetic_no_language", "seed=8", "projector=pool", "features=last"]:
        assert signature(compose([override])) != base, override


def test_evaluation_settings_are_not_the_trained_models_identity():
    """A signature names a trained model: the suite, slim size, batch size, blind control and
    generation plumbing only change what is evaluated (a re-run evaluates what its run lacks)."""
    base = signature(compose([]))
    for override in ["benchmarks=paper", "benchmarks.max_examples=5", "benchmarks.batch_size=8", "eval.blind=true",
                     "eval.cache=false", "study.experiment=x"]:
        assert signature(compose([override])) == base, override


def test_integer_and_float_epochs_are_the_same_job():
    assert signature(compose(["epochs=2"])) == signature(compose(["epochs=2.0"]))
