"""Data-parallel training on 2 CPU processes (gloo, started by torchrun): DDP and FSDP train the
model one process trains (same loss curve, same gradient norms, same evaluation), only rank 0
writes checkpoints and talks to the tracking store, and an interrupted job resumes under DDP and
FSDP, also from a checkpoint that one process wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.distributed.conftest import FAIL_AT
from vlm_sweeps import naming

# Measured: at most 1.7e-7 relative difference in loss and gradient norm over the 9 steps (fp32
# rounding: the sums over samples, micro-batches and ranks are added in another order). A real
# mistake (a rank's tokens weighted by its own count, a gradient off by the world size, a rank
# training on the wrong slice) moves them by 1e-3 or more. 1e-5 leaves room for other CPUs' kernels.
RTOL = 1e-5


def history(uri: str, experiment: str):
    """(the experiment's only run, steps, train/loss values)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id])  # exactly one: no second run, none from rank 1
    points = sorted(client.get_metric_history(run.info.run_id, naming.TRAIN_LOSS), key=lambda m: m.step)
    return run, [m.step for m in points], [m.value for m in points]


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_train_the_model_one_process_trains(mode, one_process, two_processes):
    reference, reference_norms = one_process
    _, ref_steps, ref_loss = history(two_processes.uri, "reference")
    run, steps, loss = history(two_processes.uri, mode)
    assert steps == ref_steps == list(range(1, len(steps) + 1)) and len(steps) >= 8
    assert loss == pytest.approx(ref_loss, rel=RTOL)
    for rank in (0, 1):
        # before clipping; unlike the loss under Adam, it would show a gradient off by a constant factor
        assert two_processes.grad_norms[rank][mode] == pytest.approx(reference_norms, rel=RTOL)
        # rank 0 evaluated the trained (gathered) model; both ranks return its result
        result = two_processes.ranks[rank][mode]
        assert result["run_id"] == run.info.run_id and result["signature"] == reference.signature
        assert result["metrics"] == pytest.approx(reference.metrics, abs=1e-6) and result["metrics"]
    assert run.info.status == "FINISHED"


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_only_rank_zero_writes_checkpoints_and_tracks(mode, one_process, two_processes, dist_root):
    zero, one = two_processes.ranks[0][mode], two_processes.ranks[1][mode]
    assert zero["tracker_opens"] == 1 and zero["checkpoint_writes"] >= 4
    assert one["tracker_opens"] == 0 and one["checkpoint_writes"] == 0
    # a full (unsharded) state, as one process writes it, with the same weights: measured within 9e-6
    # (Adam's normalised step amplifies rounding on tiny gradients); each step moves them ~1e-3
    signature = one_process[0].signature
    ours = torch.load(Path(dist_root, mode, signature, "checkpoint.pt"), weights_only=True)
    theirs = torch.load(Path(dist_root, "reference", signature, "checkpoint.pt"), weights_only=True)
    assert ours["model"].keys() == theirs["model"].keys()
    for key, value in theirs["model"].items():
        assert ours["model"][key].shape == value.shape
        torch.testing.assert_close(ours["model"][key], value, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode, checkpointed_by", [("ddp", "ddp"), ("fsdp", "fsdp"), ("fsdp", "one process")])
def test_an_interrupted_job_resumes_under_ddp_and_fsdp(mode, checkpointed_by, one_process, two_processes):
    reference, _ = one_process
    name = f"{mode}_resume" if mode == checkpointed_by else "single_then_fsdp"
    if checkpointed_by != "one process":
        for rank in (0, 1):
            assert f"injected failure at step {FAIL_AT}" in two_processes.ranks[rank][f"{mode}_fail"]["error"]
    _, ref_steps, ref_loss = history(two_processes.uri, "reference")
    run, steps, loss = history(two_processes.uri, name)  # the failed run, continued (not a second one)
    resumed = two_processes.ranks[0][name]
    assert run.info.run_id == resumed["run_id"] and run.info.status == "FINISHED"
    assert run.data.tags[naming.TAG_PREFIX + "resumed_from_step"] == str(FAIL_AT - 1)
    assert steps == ref_steps  # every step once
    assert loss == pytest.approx(ref_loss, rel=RTOL)
    assert resumed["metrics"] == pytest.approx(reference.metrics, abs=1e-6)
