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
                     "epochs=1.5", "data=synthetic_no_language", "eval.blind=true", "seed=8"]:
        assert signature(compose([override])) != base, override


def test_integer_and_float_epochs_are_the_same_job():
    assert signature(compose(["epochs=2"])) == signature(compose(["epochs=2.0"]))
