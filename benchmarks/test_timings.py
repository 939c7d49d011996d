"""Where the test suite's time goes: a JUnit XML report of a pytest run (`--junitxml FILE`) as tables of
seconds per tier (tests/<tier>/), per module and per kind of work, and the N slowest tests.

    python -m pytest --junitxml /tmp/suite.xml            # the README's test command, plus the report
    python benchmarks/test_timings.py /tmp/suite.xml      # Markdown tables on stdout
    python benchmarks/test_timings.py /tmp/before.xml /tmp/after.xml   # two runs side by side

A test's seconds are its setup + call + teardown as pytest measured them (a session fixture is counted
in the test that first needed it); under pytest-xdist they add up to more than the wall time.
"""

from __future__ import annotations

import argparse
import collections
import xml.etree.ElementTree as ET
from pathlib import Path

# what a module's tests spend their time on, by the module (read off the tests; a module not named
# here is in-process work: model building, scoring, statistics, config composition)
KIND_OF_MODULE = {
    "cluster": "SLURM: cluster start, sbatch, jobs on the cluster",
    "distributed": "training: several processes (torchrun)",
    "integration.test_learning": "training to a decision (learning tests)",
    "integration.test_planted_effects": "training to a decision (learning tests)",
    "integration": "training runs through the CLI (process start, training, evaluation, MLflow)",
    "eval.test_lmms_eval": "training runs through the CLI (process start, training, evaluation, MLflow)",
    "unit.test_tracking_process": "process start: tracking processes and MLflow stores",
    "unit.test_run_records": "process start: tracking processes and MLflow stores",
    "unit.test_redact": "process start: the CLI",
    "launchers.test_local_status": "process start: the CLI",
    "launchers.test_ablation_sweeper": "config composition (Hydra) and the CLI's plan",
    "launchers.test_study_presets": "config composition (Hydra) and the CLI's plan",
    "launchers.test_local_parallel": "process start: launcher workers",
    "analysis": "statistics, figures (matplotlib) and MLflow stores",
    "eval": "evaluation: loaders, scorers, generation",
    "config": "model building and one training step per option",
    "full": "scale=full loading paths on tiny checkpoints",
}


def kind_of(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in KIND_OF_MODULE:
            return KIND_OF_MODULE[key]
    return "in-process unit work"


def read(path: Path) -> list[tuple[str, str, float]]:
    """(module as tier.test_x, test name, seconds) of every test case of a JUnit XML report."""
    rows = []
    for case in ET.parse(path).iter("testcase"):
        parts = case.get("classname", "").split(".")
        if len(parts) < 3 or parts[0] != "tests":
            continue
        rows.append((".".join(parts[1:3]), case.get("name", ""), float(case.get("time", 0.0))))
    return rows


def totals(rows, key) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for row in rows:
        out[key(row)] += row[2]
    return out


def table(title: str, runs: list[tuple[str, list]], key, limit: int | None = None) -> str:
    sums = [totals(rows, key) for _, rows in runs]
    counts = [collections.Counter(key(r) for r in rows) for _, rows in runs]
    names = sorted(set().union(*sums), key=lambda k: -sums[0].get(k, 0.0))[:limit]
    head = f"| {title} | " + " | ".join(f"{label} s | {label} tests" for label, _ in runs) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(runs)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{s.get(name, 0.0):.1f} | {c.get(name, 0)}"
                                                  for s, c in zip(sums, counts)) + " |")
    lines.append("| **all** | " + " | ".join(f"**{sum(s.values()):.1f}** | **{sum(c.values())}**"
                                               for s, c in zip(sums, counts)) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path, help="JUnit XML files (pytest --junitxml)")
    parser.add_argument("--slowest", type=int, default=30, help="list the N slowest tests of the last report")
    args = parser.parse_args()
    runs = [(path.stem, read(path)) for path in args.reports]
    print(table("tier", runs, lambda r: r[0].split(".")[0]), end="\n\n")
    print(table("what the time is spent on", runs, lambda r: kind_of(r[0])), end="\n\n")
    print(table("module", runs, lambda r: r[0], limit=40), end="\n\n")
    label, rows = runs[-1]
    print(f"| {args.slowest} slowest tests ({label}) | s |\n|---|---:|")
    for module, name, seconds in sorted(rows, key=lambda r: -r[2])[:args.slowest]:
        print(f"| {module}::{name} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
