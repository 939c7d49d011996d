"""The open design space through the real CLI: option files of new kinds and new axes run tiny
jobs to FINISHED, with no code change; sweeps over the new axes finish and log what they change."""

from __future__ import annotations

import re

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, SMALL
from tests.integration.conftest import run_cli
from vlm_sweeps import naming

pytestmark = pytest.mark.integration

# small jobs: every code path, a few seconds of training each
QUICK = SMALL + ["data.synthetic.n_finetune=64", "data.synthetic.n_eval=8"]


def _runs(cwd) -> list:
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name(naming.DEFAULT_EXPERIMENT)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{naming.TAG_KIND}` = 'job'")


def _ok(result) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _readme_yaml(path_comment: str) -> str:
    """The YAML block of README.md's "Adding an option" whose first line is `# <path_comment>`."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Adding an option"):]
    block = re.search(r"```yaml\n(# " + re.escape(path_comment) + r"\n.*?)```", section, re.S)
    assert block, f"README's 'Adding an option' has no yaml block for {path_comment}"
    return block.group(1)


def test_the_readme_llm_file_runs_a_tiny_job_with_no_code_change(tmp_path):
    """Written from the README alone: its example file for a family the repo has no option for
    (OLMo-2), outside the repo, through Hydra's search path."""
    path = re.search(r"```yaml\n# (conf/llm/\w+\.yaml)", (REPO / "README.md").read_text()).group(1)
    option = path.rsplit("/", 1)[1].removesuffix(".yaml")
    assert not (REPO / path).exists(), "the README's example must be a family the repo has no option for"
    mine = tmp_path / "my_conf"
    (mine / "llm").mkdir(parents=True)
    (mine / "llm" / f"{option}.yaml").write_text(_readme_yaml(path))
    result = run_cli(["-m", "vlm_sweeps.run", f"hydra.searchpath=[file://{mine}]", f"llm={option}", *QUICK], tmp_path)
    _ok(result)
    (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.params["llm"] == option
    assert run.data.params["llm.model_type"] == "olmo2"


def test_the_readme_open_clip_file_runs_a_tiny_job_with_no_code_change(tmp_path):
    path = re.search(r"```yaml\n# (conf/encoder/\w+\.yaml)", (REPO / "README.md").read_text()).group(1)
    option = path.rsplit("/", 1)[1].removesuffix(".yaml")
    assert not (REPO / path).exists()
    text = _readme_yaml(path)
    assert "kind: open_clip" in text
    mine = tmp_path / "my_conf"
    (mine / "encoder").mkdir(parents=True)
    (mine / "encoder" / f"{option}.yaml").write_text(text)
    result = run_cli(["-m", "vlm_sweeps.run", f"hydra.searchpath=[file://{mine}]", f"encoder={option}", *QUICK],
                     tmp_path)
    _ok(result)
    (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.params["encoder"] == option


OPEN_CLIP = ["datacomp", "dfn", "metaclip", "siglip2", "dinosiglip2"]


def test_an_open_clip_encoder_sweep_finishes(tmp_path):
    _ok(run_cli(["-m", "vlm_sweeps.run", "-m", f"encoder={','.join(OPEN_CLIP)}", *QUICK], tmp_path))
    runs = _runs(tmp_path)
    assert sorted(r.data.params["encoder"] for r in runs) == sorted(OPEN_CLIP)
    assert {r.info.status for r in runs} == {"FINISHED"}


PROJECTORS = ["linear", "mlp", "resampler", "pool", "pixel_shuffle", "cabstractor"]
FEATURES = ["penultimate", "last", "multi"]


@pytest.fixture(scope="module")
def axes_sweeps(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("axes")
    _ok(run_cli(["-m", "vlm_sweeps.run", "-m", f"projector={','.join(PROJECTORS)}", *QUICK], cwd))
    _ok(run_cli(["-m", "vlm_sweeps.run", "-m", "features=last,multi", *QUICK], cwd))  # penultimate = projector=mlp
    _ok(run_cli(["-m", "vlm_sweeps.run", "optimization=finetune_encoder_lr_tenth", *QUICK], cwd))
    return cwd, _runs(cwd)


def test_projector_and_features_sweeps_finish_and_log_their_axes(axes_sweeps):
    _, runs = axes_sweeps
    assert {r.info.status for r in runs} == {"FINISHED"}
    default = [r for r in runs if r.data.params["optimization"] == "single_stage"]
    assert sorted((r.data.params["projector"], r.data.params["features"]) for r in default) == sorted(
        [(p, "penultimate") for p in PROJECTORS] + [("mlp", f) for f in ("last", "multi")])
    tokens = {(r.data.params["projector"], r.data.params["features"]): r.data.metrics[naming.VISUAL_TOKENS]
              for r in default}
    patches = tokens[("mlp", "penultimate")]
    side = int(patches ** 0.5)
    assert tokens[("linear", "penultimate")] == tokens[("mlp", "last")] == patches
    for compressing in ("resampler", "pool", "pixel_shuffle", "cabstractor"):
        assert tokens[(compressing, "penultimate")] == ((side + 1) // 2) ** 2 < patches
    for run in default:
        assert run.data.tags[naming.TAG_VISUAL_TOKENS] == str(int(run.data.metrics[naming.VISUAL_TOKENS]))


def test_distinct_options_give_distinct_training_losses(axes_sweeps):
    cwd, runs = axes_sweeps
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    losses = {}
    for run in runs:
        key = (run.data.params["projector"], run.data.params["features"], run.data.params["optimization"])
        losses[key] = tuple(m.value for m in client.get_metric_history(run.info.run_id, naming.TRAIN_LOSS))
    assert len(set(losses.values())) == len(losses) == len(PROJECTORS) + 2 + 1, losses


def test_the_encoder_learning_rate_option_finishes_training_the_tower(axes_sweeps):
    _, runs = axes_sweeps
    (run,) = [r for r in runs if r.data.params["optimization"] == "finetune_encoder_lr_tenth"]
    assert run.info.status == "FINISHED"
    assert run.data.params["optimization.stages"].count("lr_scale") == 1
    assert int(run.data.tags[f"{naming.TAG_PREFIX}params.encoder"]) > 0
