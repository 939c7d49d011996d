"""Every script under benchmarks/ runs: each one as a user runs it (`python benchmarks/X.py ...`, a
process of its own) with its smallest settings, exits 0 and prints the figures it exists to print.

A new script fails `test_every_script_has_a_smoke_run` until it has a case in CASES. The SLURM one
(submit_100.py) needs the session's cluster: its smoke run is tests/cluster/test_benchmark_submit.py.
Each case prints its CPU seconds (the script and every process it waited for; `-rA` shows them): the
whole module is about 4.5 CPU minutes, most of it in the scripts that run real jobs (~12 CPU s a job
process: imports, a fresh MLflow store, the tracking process).
"""

from __future__ import annotations

import re
import resource
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, SMALL
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration

BENCHMARKS = REPO / "benchmarks"
# the smallest job that still trains and evaluates: SMALL data, one benchmark of two examples
TINY_JOB = [*SMALL, "benchmarks.suite=[synth_vqa]", "benchmarks.max_examples=2"]
NO_REPORT = "hydra.callbacks.report.enabled=false"  # a sweep's end-of-sweep analysis report: matplotlib, seconds
NUMBER = r"-?\d+(?:\.\d+)?"
TINY_JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
<testcase classname="tests.unit.test_samplers" name="test_a" time="1.5"/>
<testcase classname="tests.integration.test_cli" name="test_b" time="12.25"/>
<testcase classname="tests.cluster.test_slurm_launcher" name="test_c" time="30.0"/>
</testsuite></testsuites>
"""


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # after `python benchmarks/<script>.py`; "{tmp}" is the test's tmp_path
    expect: tuple[str, ...]  # regular expressions, each matching a whole line of stdout


CASES = {
    "analysis_report": Case(
        ("--runs", "6"),  # two axes (llm, optimization): every figure
        (rf"built store with 6 runs in {NUMBER} s",
         rf"load_store : +{NUMBER} s  \(6 runs, axes .*\)",
         rf"6 runs: load {NUMBER} s, analyse {NUMBER} s, render {NUMBER} s, total {NUMBER} s")),
    "calibration": Case(
        ("--sweeps", "4"),
        (rf"A/A, generated sweep with seed=0,1,2: no verdict in {NUMBER}% of 4 resamples",
         rf"A/A, 4 generated sweeps with every axis null: any verdict in {NUMBER}%",
         r"planted +30 points, 3 seed\(s\) \(9 pairs\): found in \d+%, another verdict in \d+%")),
    "default_sweep_time": Case(
        ("--src", str(REPO), "--sweep", "encoder=clip", "--extra", *TINY_JOB, NO_REPORT),
        (rf"repeat 0: {re.escape(str(REPO))}: \d+ s wall, \d+ CPU s \(load average before: .*\)",
         rf"median {re.escape(str(REPO))}: \d+ s wall, \d+ CPU s over 1 sweep\(s\): \d+")),
    "eval_generation": Case(
        ("--examples", "2", "--batch", "2", "--repeats", "1", "--root", "{tmp}",
         *(a for a in SMALL if a.startswith("data."))),
        (r"identical texts for generate at batch 1, generate at batch 2, loop at batch 1, loop at batch 2 .*",
         rf" *generate batch +2: +{NUMBER} examples/s \(median of 1: {NUMBER} s\)",
         rf"generate vs hand-written loop at batch 2: {NUMBER}x throughput \({NUMBER} vs {NUMBER} examples/s\)")),
    "job_overhead": Case(
        ("--extra", *TINY_JOB),
        (rf"cold: start -> first training step {NUMBER} s of {NUMBER} s \(\d+%\): imports_compose_store .*",
         rf"per-job overhead \(warm cache\): {NUMBER} s, \d+% of a \d+ s tiny job")),
    "llava_memory": Case(
        ("--records", "1000"),
        (rf"file: {NUMBER} MiB, 1000 records",
         rf"RSS before reading: \d+ MiB; peak RSS: \d+ MiB \(\+\d+ MiB, {NUMBER}x the file\)",
         rf"load_llava: {NUMBER} s")),
    "local_parallel": Case(
        ("--sweep", "encoder=clip", "resize=naive", "--extra", *TINY_JOB, NO_REPORT),
        (rf" *sequential: +{NUMBER} s for 1 runs, {NUMBER} s per job on average .*",
         rf" *parallel: +{NUMBER} s for 1 runs, {NUMBER} s per job on average .*",
         rf"scores of the parallel sweep vs the sequential one: max \|difference\| {NUMBER}.*",
         rf"local_parallel: sequential {NUMBER} s / parallel=2 {NUMBER} s = ratio {NUMBER} \(target >= {NUMBER}\)")),
    "shared_machine": Case(
        ("--quick", "--cases", "c", "--extra", *TINY_JOB, "run.log_every=1"),  # a curve point every step
        (rf"a: one job alone +solo +{NUMBER} +1\.00  torch threads: .*",
         rf"c: two at once, run\.threads=null +c1 +{NUMBER} +{NUMBER}  torch threads: .*",
         rf"c: two at once, run\.threads=null: min {NUMBER} of solo, (meets|misses) the 40% target")),
    "sweep_cache": Case(
        # one torch thread in every job: the script compares the metrics exactly, and a job's thread count
        # otherwise follows the vlm_sweeps jobs running beside it (cpu_share.py), which changes float rounding
        ("--sweep", "llm=llama2", "epochs=1", "--no-warmup", "--extra", *TINY_JOB, NO_REPORT, "run.threads=1"),
        (rf" *cached: +{NUMBER} s for 1 runs",
         rf"  llm=llama2 +epochs=1\.0: synth_vqa/accuracy {NUMBER}  train +{NUMBER} s \(cached\) vs +{NUMBER} s \(uncached\)",
         r"metrics equal with and without the cache \(\d+ per run: .*\): yes, all 1 runs",
         rf"sweep_cache: uncached {NUMBER} s / cached {NUMBER} s = ratio {NUMBER}")),
    "test_timings": Case(
        ("{tmp}/suite.xml", "--slowest", "2"),
        (r"\| integration \| 12\.2 \| 1 \|",
         r"\| SLURM: cluster start, sbatch, jobs on the cluster \| 30\.0 \| 1 \|",
         r"\| \*\*all\*\* \| \*\*43\.8\*\* \| \*\*3\*\* \|",
         r"\| cluster\.test_slurm_launcher::test_c \| 30\.0 \|")),
    "tracking_modes": Case(
        # the warm-up job is tracking.process=false (inline), the timed one the default tracking process
        ("--rounds", "1", "--modes", "process", "--extra", *TINY_JOB),
        (rf"round 1 process +start -> first step +{NUMBER} s, job +{NUMBER} s",
         rf"median process +start -> first step +{NUMBER} s +job +{NUMBER} s +\(1\.00 x the tracking process's\)")),
    "train_step": Case(
        ("--batch", "2", "--repeats", "1", "--device", "cpu", "--extra", *(a for a in SMALL if a.startswith("data."))),
        (rf"tiny on cpu: batch 2, \d+ patches, initial loss ours {NUMBER} / reference {NUMBER}",
         rf"ours {NUMBER} samples/s, LlavaForConditionalGeneration {NUMBER} samples/s \(median of 1\)",
         rf"train step ratio ours/reference: {NUMBER}")),
}
ON_THE_CLUSTER = {"submit_100"}  # tests/cluster/test_benchmark_submit.py
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))


def test_every_script_has_a_smoke_run():
    missing = [s for s in SCRIPTS if s not in CASES and s not in ON_THE_CLUSTER]
    assert not missing, f"benchmarks/ scripts without a smoke run in CASES here: {missing}"


def run_script(script: str, args: list[str], cwd: Path) -> str:
    """stdout of `python benchmarks/<script>.py ARGS` in `cwd`, which must exit 0; prints its CPU
    seconds (the processes it waited for included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = run_cli([str(BENCHMARKS / f"{script}.py"), *args], cwd, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(f"{script}: {cpu:.1f} CPU s")
    assert out.returncode == 0, f"{script} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out.stdout


def assert_prints(stdout: str, expect: tuple[str, ...]) -> None:
    lines = stdout.splitlines()
    for pattern in expect:
        assert any(re.fullmatch(pattern, line) for line in lines), f"no line matches {pattern!r} in:\n{stdout}"


# each case a group of its own: the cases share nothing, and xdist spreads them over its workers
@pytest.mark.parametrize("script", [pytest.param(s, marks=pytest.mark.xdist_group(f"benchmark-script-{s}"))
                                    for s in SCRIPTS if s in CASES])
def test_script_smoke_run(script, tmp_path):
    (tmp_path / "suite.xml").write_text(TINY_JUNIT)
    args = [a.replace("{tmp}", str(tmp_path)) for a in CASES[script].args]
    cwd = tmp_path / "cwd"  # a script's own files (train_step.py's .vlm_sweeps/) stay in the test's folder
    cwd.mkdir()
    assert_prints(run_script(script, args, cwd), CASES[script].expect)
