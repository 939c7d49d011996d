"""What SLURM and the tracking store say, read back: sacct parsing and the state a user sees."""

from __future__ import annotations

import pytest

from launchers.cluster import SlurmState, expand_ids, parse_sacct
from launchers.manifest import JobEntry
from launchers.status import job_state, varying_keys


def test_expand_array_ids():
    assert expand_ids("12_[0-2,5%2]") == ["12_0", "12_1", "12_2", "12_5"]
    assert expand_ids("12_[7]") == ["12_7"]
    assert expand_ids("12_4") == ["12_4"] and expand_ids("12") == ["12"]


def test_parse_sacct_counts_requeues():
    text = "\n".join([
        "7_0|COMPLETED|0:0",
        "7_1|REQUEUED|0:0",  # -D lists the attempts of a requeued task, oldest first
        "7_1|PENDING|0:0",
        "7_[2-3%4]|PENDING|0:0",
        "8|CANCELLED by 0|0:15",
        "9|REQUEUED|0:0",
    ])
    states = parse_sacct(text)
    assert states["7_0"] == SlurmState("7_0", "COMPLETED", "0:0", 0)
    assert (states["7_1"].state, states["7_1"].requeues) == ("PENDING", 1)
    assert states["7_3"].state == "PENDING" and not states["7_3"].terminal
    assert states["8"].state == "CANCELLED" and states["8"].terminal
    assert (states["9"].state, states["9"].requeues) == ("REQUEUED", 1)


@pytest.mark.parametrize("slurm, run, expected", [
    (None, "FINISHED", "finished"),  # skipped at submit: the store decides
    (None, None, "queued"),
    (("PENDING", 0), None, "queued"),
    (("PENDING", 1), "RUNNING", "requeued"),
    (("REQUEUED", 1), "RUNNING", "requeued"),
    (("RUNNING", 0), "RUNNING", "running"),
    (("RUNNING", 2), "RUNNING", "running"),
    (("COMPLETED", 0), "FINISHED", "finished"),
    (("COMPLETED", 0), "FAILED", "failed"),  # exit 0 but no finished run is not a success
    (("FAILED", 0), "FAILED", "failed"),
    (("TIMEOUT", 0), "RUNNING", "failed"),
    (("CANCELLED", 0), None, "failed"),
])
def test_job_state(slurm, run, expected):
    state = SlurmState("1", slurm[0], requeues=slurm[1]) if slurm else None
    assert job_state(state, run) == expected


def test_varying_keys_are_the_swept_ones():
    entries = [JobEntry(i, f"s{i}", [f"encoder={e}", f"resize={r}", "seed=7"], {})
               for i, (e, r) in enumerate([("clip", "naive"), ("clip", "letterbox"), ("siglip", "naive")])]
    assert varying_keys(entries) == ["encoder", "resize"]
    entries.append(JobEntry(3, "s3", ["encoder=clip", "resize=naive"], {}))  # no seed override
    assert varying_keys(entries) == ["encoder", "resize", "seed"]
