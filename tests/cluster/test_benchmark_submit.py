"""benchmarks/submit_100.py runs (issue 23: every script under benchmarks/ runs), on the session's
cluster (it uses the one $SLURM_CONF names) with a few seeds instead of 100; the other scripts' smoke
runs are tests/integration/test_benchmark_scripts.py."""

from __future__ import annotations

import re
import resource

import pytest

from tests.conftest import REPO
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.cluster

SCRIPT = str(REPO / "benchmarks" / "submit_100.py")


def test_submit_benchmark_smoke_run(slurm_cluster, tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = run_cli([SCRIPT, "--seeds", "--count", "3"], tmp_path, env_extra=slurm_cluster.env, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(out.stdout, f"{after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime:.1f} CPU s", sep="")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    lines = out.stdout.splitlines()
    assert any(" jobs to SLURM in " in line for line in lines), out.stdout
    assert any(re.fullmatch(r"squeue: 3 array tasks of job \d+ queued \(held; cancelled now\)", line)
               for line in lines), out.stdout
    assert re.fullmatch(r"submit_100: \d+\.\d s from the shell for 3 jobs queued \(3 seeds, fresh MLflow store, "
                        r"2-core machine\)", lines[-1]), out.stdout
