"""What a FINISHED run still lacks of the suite a config asks for. Evaluation settings are not part
of a job's signature (identity.py), so a re-run with another suite, slim size or blind control
finds the trained model's run and evaluates only what that run lacks, on its checkpoint.

A benchmark counts as evaluated when the run holds its headline metric (`blind/` first for the
blind control) computed on the same slim size: the size is the run's `benchmarks.max_examples`
param for its first evaluation, and a tag `vlm_sweeps.evaluated.<[blind/]benchmark>` for every
later one. The batch size and the cache never change a score, so they never ask for a re-run.
Every evaluation also records its whole setting (examples scored, version, generation settings) in
`vlm_sweeps.eval_setting.<[blind/]benchmark>` (eval/settings.py) for analysis; what a run lacks is
still decided by the slim size alone, so runs logged before that tag existed read as they did.
"""

from __future__ import annotations

from typing import Any, Mapping

from vlm_sweeps import naming


def setting(max_examples: Any) -> str:
    """How an evaluation's slim size is written (the param's rendering: "None" for all examples)."""
    return str(None if max_examples is None else int(max_examples))


def evaluated_tag(benchmark: str, blind: bool) -> str:
    return f"{naming.TAG_EVALUATED}{naming.BLIND_PREFIX if blind else ''}{benchmark}"


def lacking(suite: list[str], max_examples: Any, blind: bool, metrics: Mapping[str, float],
            tags: Mapping[str, str], params: Mapping[str, str]) -> list[str]:
    """The benchmarks of `suite` the run (its metrics, tags and params) has not evaluated with
    this slim size and blind setting, in the suite's order."""
    wanted = setting(max_examples)
    prefix = naming.BLIND_PREFIX if blind else ""
    missing = []
    for benchmark in suite:
        if prefix + naming.headline_metric(benchmark) not in metrics:
            missing.append(benchmark)
            continue
        done = tags.get(evaluated_tag(benchmark, blind), params.get("benchmarks.max_examples"))
        if done is not None and done != wanted:
            missing.append(benchmark)
    return missing


def lacking_for(cfg: Any, metrics: Mapping[str, float], tags: Mapping[str, str], params: Mapping[str, str]
                ) -> list[str]:
    """`lacking` for a composed (or frozen, plain-dict) config."""
    benchmarks, ev = cfg["benchmarks"], cfg["eval"]
    return lacking(list(benchmarks["suite"]), benchmarks.get("max_examples"), bool(ev.get("blind", False)),
                   metrics, tags, params)
