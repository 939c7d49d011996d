"""The command line contract, through real subprocesses."""

from pathlib import Path

from tests.integration.conftest import run_cli


def test_unknown_encoder_fails_and_lists_the_valid_ones(tmp_path):
    out = run_cli(["-m", "vlm_sweeps.run", "encoder=nope"], tmp_path, seed=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "Could not find 'encoder/nope'" in text
    for name in ["clip", "siglip", "dinov2", "in1k", "dinoclip", "dinosiglip", "clip_224"]:
        assert f"\t{name}\n" in text, name
    assert not (tmp_path / "mlflow.db").exists()  # nothing written for a config that never composed


def test_unknown_key_fails_at_compose_time(tmp_path):
    out = run_cli(["-m", "vlm_sweeps.run", "encoder.imagesize=336"], tmp_path)
    assert out.returncode != 0
    assert "imagesize" in out.stderr


def test_bad_values_are_collected_into_one_error(tmp_path):
    out = run_cli(["-m", "vlm_sweeps.run", "epochs=0", "data.synthetic.max_objects=9",
                   "benchmarks.suite=[synth_vqa,nope]"], tmp_path)
    assert out.returncode != 0
    for fragment in ["epochs=0.0: must be a positive finite number", "max_objects=9", "unknown benchmark 'nope'"]:
        assert fragment in out.stderr, fragment


def test_runs_from_any_working_directory(tmp_path):
    out = run_cli(["-m", "vlm_sweeps.run", "--cfg", "job"], Path(tmp_path))
    assert out.returncode == 0
    assert "name: clip" in out.stdout
