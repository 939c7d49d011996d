"""Shared align jobs at submit time, without a cluster: two-stage jobs grouped by align signature;
one align job per group that needs one, its jobs in arrays that depend on it (afterok), cancelled
by SLURM if it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from launchers import align, slurm
from launchers.entry import AlignJob, SweepJob
from launchers.freeze import Composer, freeze
from launchers.resources import resources_for

SWEEP = [["optimization=two_stage", "epochs=1"], ["optimization=two_stage", "epochs=2"],
         ["optimization=two_stage_full_finetune"], ["optimization=single_stage"],
         ["optimization=two_stage", "encoder=siglip"], ["optimization=two_stage", "seed=3", "run.share_align=false"]]


@pytest.fixture()
def jobs(hydra_loader, tmp_path):
    from omegaconf import OmegaConf

    loader, master = hydra_loader
    composer = Composer(loader)
    options = OmegaConf.to_container(master.hydra.launcher, resolve=False)
    frozen = []
    for num, overrides in enumerate(SWEEP):
        job = freeze(composer, master, overrides, num, tmp_path)
        job.resource_class, job.resources = resources_for(job.config, options["resources"], options["resource_classes"])
        frozen.append(job)
    return frozen


def test_jobs_sharing_an_align_are_grouped(jobs):
    groups = align.group(jobs, active={}, min_group=2)
    by_members = {tuple(m.num for m in g.members): g for g in groups}
    assert set(by_members) == {(0, 1, 2), (4,)}  # single_stage has no align; #5 does not share
    assert by_members[(0, 1, 2)].skipped is None  # needs an align job
    assert by_members[(4,)].skipped == align.INLINE  # alone: aligns inside its job
    assert by_members[(0, 1, 2)].path.parent.name == f"align-{by_members[(0, 1, 2)].signature}"


def test_an_existing_or_queued_align_gets_no_align_job(jobs):
    (first, _) = align.group(jobs, active={}, min_group=2)
    first.path.parent.mkdir(parents=True)
    first.path.write_bytes(b"")
    (exists, _) = align.group(jobs, active={}, min_group=2)
    assert exists.skipped == align.EXISTS and exists.dependency is None
    first.path.unlink()
    (active, _) = align.group(jobs, active={first.signature: "77_1"}, min_group=2)
    assert (active.skipped, active.dependency) == (align.ACTIVE, "afterok:77_1")


class FakeExecutor:
    """submitit.AutoExecutor as `_submit_arrays` uses it; job ids like SLURM's."""

    arrays: list[tuple[dict, list]] = []
    next_id = 100

    def __init__(self, folder, cluster, **kwargs):
        self.params: dict = {}

    def update_parameters(self, **params):
        self.params.update(params)

    def batch(self):
        import contextlib

        self.pending: list = []
        array_id = FakeExecutor.next_id
        FakeExecutor.next_id += 1

        @contextlib.contextmanager
        def ctx():
            yield
            FakeExecutor.arrays.append((dict(self.params), list(self.pending)))
            for i, handle in enumerate(self.handles):
                handle.job_id = f"{array_id}_{i}" if len(self.handles) > 1 else str(array_id)
        self.handles = []
        return ctx()

    def submit(self, task):
        from types import SimpleNamespace

        self.pending.append(task)
        handle = SimpleNamespace(job_id=None)
        self.handles.append(handle)
        return handle


def test_align_jobs_first_then_arrays_that_depend_on_them(jobs, monkeypatch, tmp_path):
    import submitit

    FakeExecutor.arrays = []
    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    options = {"max_array_size": 1000, "max_num_timeout": 3, "python": None,
               "sbatch_flags": {"constraint": "cpu"}, "job_name": "vlm"}
    groups = align.group(jobs, active={}, min_group=2)
    submitted, aligns = slurm._submit(jobs, groups, options, "sweep1", tmp_path)

    (align_params, align_tasks), *job_arrays = FakeExecutor.arrays
    (task,) = align_tasks
    assert isinstance(task, AlignJob) and task.align_signature == groups[0].signature
    assert "slurm_dependency" not in align_params
    assert [sig for sig, _ in aligns] == [groups[0].signature]
    align_id = aligns[0][1].job_id
    assert groups[0].job_id == align_id

    waiting = [(p, tasks) for p, tasks in job_arrays if "slurm_dependency" in p]
    free = [(p, tasks) for p, tasks in job_arrays if "slurm_dependency" not in p]
    (params, tasks), = waiting
    assert params["slurm_dependency"] == f"afterok:{align_id}"
    assert params["slurm_additional_parameters"] == {"constraint": "cpu", "kill-on-invalid-dep": "yes"}
    assert sorted(t.signature for t in tasks) == sorted(jobs[n].signature for n in (0, 1, 2))
    (params, tasks), = free  # single_stage, the lone siglip job, the one that does not share
    assert sorted(t.signature for t in tasks) == sorted(jobs[n].signature for n in (3, 4, 5))
    assert params["slurm_additional_parameters"] == {"constraint": "cpu"}
    assert all(isinstance(t, SweepJob) for _, ts in job_arrays for t in ts)
    assert len(submitted) == 6


def test_dependency_reaches_the_sbatch_file(tmp_path):
    """submitit writes `dependency` and the extra flags as #SBATCH lines; an array task is `<id>_<n>`."""
    from submitit.slurm.slurm import _make_sbatch_string

    params = align.dependent_parameters({"slurm_additional_parameters": {"hold": True}}, "afterok:41_3")
    text = _make_sbatch_string(command="x", folder=tmp_path, dependency=params["slurm_dependency"],
                               additional_parameters=params["slurm_additional_parameters"])
    assert "#SBATCH --dependency=afterok:41_3" in text.splitlines()
    assert "#SBATCH --kill-on-invalid-dep=yes" in text.splitlines()
    assert "#SBATCH --hold" in text.splitlines()


def test_manifest_without_aligns_still_reads(tmp_path):
    import json

    from launchers import manifest

    path = Path(tmp_path) / "slurm" / "old.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"sweep_id": "old", "submitted_at": "t", "tracking_uri": "u", "experiment": "e",
                                "submitit_folder": "f", "root": str(tmp_path),
                                "jobs": [{"num": 0, "signature": "s", "overrides": [], "axes": {}}]}))
    record = manifest.read(path)
    assert record.aligns == [] and record.jobs[0].depends_on is None


def test_status_of_align_stages(tmp_path):
    from launchers import manifest, status
    from launchers.cluster import SlurmState

    done = tmp_path / "align-a" / "align.pt"
    done.parent.mkdir()
    done.write_bytes(b"")
    entries = [manifest.AlignEntry("a", str(done), [0, 1], job_id="7"),
               manifest.AlignEntry("b", str(tmp_path / "none.pt"), [2, 3], job_id="8_0"),
               manifest.AlignEntry("c", str(tmp_path / "none.pt"), [4], skipped=align.INLINE),
               manifest.AlignEntry("d", str(done), [5], skipped=align.EXISTS)]
    record = manifest.Manifest("s", "t", "u", "e", "f", str(tmp_path), aligns=entries)
    slurm = {"7": SlurmState("7", "COMPLETED"), "8_0": SlurmState("8_0", "FAILED")}
    rows = status.align_rows(record, slurm)
    assert [(r.state, r.slurm) for r in rows] == [("finished", "7 COMPLETED"), ("failed", "8_0 FAILED"),
                                                   ("in a job", "inline"), ("finished", "exists")]
    text = status.render(record, [], "m", rows)
    assert "shared align stages:" in text and "#2 #3" in text


def test_a_requeued_align_job_carries_its_config():
    import pickle

    job = AlignJob({"seed": 7}, "abc123")
    again = pickle.loads(pickle.dumps(job.checkpoint().function))
    assert (again.config, again.align_signature) == ({"seed": 7}, "abc123")
