"""The shared align's "train it or load it": two processes that want the same align at once train
it once; the other waits, then leaves its model and RNG exactly as the trainer's were."""

import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from vlm_sweeps.train.shared_align import REUSED, TRAINED, SharedAlign, align_once


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.projector, self.llm = nn.Linear(2, 2), nn.Linear(2, 3), nn.Linear(3, 3)

    def parts(self):
        return {"encoder": self.encoder, "projector": self.projector, "llm": self.llm}


def _worker(folder: str, name: str) -> None:
    """One job: seeded model, then its align (trained slowly, or loaded), then a draw from the RNG."""
    torch.manual_seed(0)
    model = Tiny()
    logged = []

    def train_fn(log_fn, resume, on_checkpoint):
        with open(Path(folder) / "trained_by", "a") as f:
            f.write(name + "\n")
        time.sleep(1.5)  # long enough for the other process to be waiting on the lock
        with torch.no_grad():
            model.projector.weight.add_(torch.randn(3, 2))  # training draws from the RNG
        for step in (1, 2):
            log_fn({"train/loss": 1.0 / step}, step)
        return SimpleNamespace(steps=2, final_loss=0.5, seconds=1.5)

    state, source = align_once(SharedAlign(folder, "abc123"), model, SimpleNamespace(train=["projector"]),
                               train_fn, lambda metrics, step: logged.append([step, metrics]))
    torch.save({"source": source, "projector": model.projector.state_dict(), "next_draw": torch.rand(4),
                "logged": logged, "steps": state["steps"]}, Path(folder) / f"{name}.pt")


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_two_processes_wanting_one_align_train_it_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), name)) for name in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert len((tmp_path / "trained_by").read_text().split()) == 1  # trained exactly once
    a, b = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("a", "b"))
    assert {a["source"], b["source"]} == {TRAINED, REUSED}
    for key in ("weight", "bias"):
        assert torch.equal(a["projector"][key], b["projector"][key])
    assert torch.equal(a["next_draw"], b["next_draw"])  # the RNG continues where the align left it
    assert a["logged"] == b["logged"] == [[1, {"train/loss": 1.0}], [2, {"train/loss": 0.5}]]
    assert a["steps"] == b["steps"] == 2
    assert (tmp_path / "align-abc123" / "align.pt").is_file()
    assert not (tmp_path / "align-abc123" / "checkpoint.pt").exists()


def test_no_sharing_when_off_single_stage_or_several_processes(tmp_path, monkeypatch):
    from tests.conftest import compose

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    shared = SharedAlign.of(compose(["optimization=two_stage"], root=tmp_path))
    assert shared is not None and shared.folder.parent == tmp_path / "runs"
    assert SharedAlign.of(compose(["optimization=two_stage", "run.share_align=false"])) is None
    assert SharedAlign.of(compose(["optimization=single_stage"])) is None
    monkeypatch.setenv("WORLD_SIZE", "2")  # rank 0 alone under the lock would deadlock the others
    assert SharedAlign.of(compose(["optimization=two_stage"])) is None
