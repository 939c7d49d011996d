"""What a sweep's output says when it goes to a file or a pipe (SLURM, the local launcher's logs): each
job where it stands in the sweep and how its training goes, without the threads of other jobs.
Reads the session's shared sweep (no job of its own)."""

from __future__ import annotations

import re


def test_a_sweep_logged_to_a_pipe_says_job_k_of_n_and_training_progress(small_sweep):
    out = small_sweep.first.stdout + small_sweep.first.stderr
    for k in range(1, 7):
        assert out.count(f"job {k} of 6: ") == 1, k
    lines = re.findall(r"stage finetune: step (\d+)/(\d+) \(\d+%\), loss \d+\.\d{3}, (?:first step in \d+\.\d s|"
                       r"\d+\.\d samples/s, ETA (?:\d+h)?(?:\d+m)?\d+[sm])", out)
    assert len(lines) >= 6, out[-3000:]  # at least one a job: after its first step
    assert all(1 <= int(step) <= int(total) for step, total in lines)
    assert not re.search(r"torch threads: \d+ -> \d+", out)  # re-balancing is at debug level
