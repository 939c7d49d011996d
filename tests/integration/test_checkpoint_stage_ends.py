"""`run.checkpoint_every=0` means what the config says, "only at stage ends": a finished run keeps
the checkpoint of its final step, so it can be evaluated again later without training."""

import pytest
import torch

from tests.conftest import SMALL, compose
from vlm_sweeps.job import run_job

pytestmark = pytest.mark.integration


def test_checkpoint_every_zero_keeps_the_final_step(tmp_path, clean_env):
    job = SMALL + ["optimization=two_stage", "run.checkpoint_every=0", "data.synthetic.n_align=32",
                   "data.synthetic.n_finetune=32", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    result = run_job(compose(job, root=tmp_path))
    path = tmp_path / "runs" / result.signature / "checkpoint.pt"
    assert path.is_file(), "checkpoint_every=0 left no checkpoint: the run could never be re-evaluated"
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert saved["run_id"] == result.run_id
    assert saved["stage_index"] == 1  # the last stage (finetune), at its last step
    assert saved["stage_step"] == saved["stage_steps"][-1] > 0
    assert len(saved["stage_steps"]) == 2 and saved["model"]
