"""Changed data trains anew: a job's signature holds the digest of the records it trains on
(data/digest.py), so a FINISHED run of other records is never shown as this job's result. Real jobs
on a real sqlite store, on LLaVA-format records (the synthetic world's, which are that format)."""

from __future__ import annotations

import json
import shutil

from tests.conftest import SMALL, compose, seed_store
from vlm_sweeps import identity
from vlm_sweeps.job import run_job


def _mix(world, folder, keep: int | None = None):
    shutil.copytree(world, folder)
    if keep is not None:
        records = json.loads((folder / "finetune.json").read_text())
        (folder / "finetune.json").write_text(json.dumps(records[:keep]))
    return folder


def test_other_records_under_the_same_or_another_path_train_anew(tmp_path, small_world, clean_env):
    world, _ = small_world
    a, b = _mix(world, tmp_path / "A"), _mix(world, tmp_path / "B", keep=40)
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"

    def job(data_root):
        return run_job(compose(SMALL + ["data=llava_v15", "data.align_file=align.json",
                                        "data.finetune_file=finetune.json", f"paths.data_root={data_root}",
                                        f"tracking.uri={uri}"], root=tmp_path / "root"))

    first = job(a)
    assert not first.skipped
    other = job(b)  # 40 other records where the first had 96: not the first run's result
    assert not other.skipped and other.signature != first.signature and other.run_id != first.run_id
    moved = job(_mix(a, tmp_path / "A_moved"))  # the same records elsewhere: the same job, skipped
    assert moved.skipped and moved.run_id == first.run_id

    records = json.loads((a / "finetune.json").read_text())  # edited in place: trained anew
    (a / "finetune.json").write_text(json.dumps(records[1:]))
    edited = job(a)
    assert not edited.skipped and edited.signature not in (first.signature, other.signature)


def test_the_align_signature_follows_the_align_records_alone(tmp_path, small_world):
    world, _ = small_world
    a, b = _mix(world, tmp_path / "A"), _mix(world, tmp_path / "B", keep=40)  # finetune records differ

    def cfg(data_root):
        return compose(SMALL + ["optimization=two_stage", "data=llava_v15", "data.align_file=align.json",
                                "data.finetune_file=finetune.json", f"paths.data_root={data_root}"])

    assert identity.align_signature(cfg(a)) == identity.align_signature(cfg(b))  # one shared align
    assert identity.signature(cfg(a)) != identity.signature(cfg(b))
    records = json.loads((b / "align.json").read_text())
    (b / "align.json").write_text(json.dumps(records[1:]))
    assert identity.align_signature(cfg(a)) != identity.align_signature(cfg(b))
    assert identity.signature(compose(SMALL)) == identity.signature(compose(SMALL))  # synthetic: config alone
