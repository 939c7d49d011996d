"""What a benchmark's scores depend on besides the trained model, recorded on the run at EVERY
evaluation (the job's first one and each later one on its checkpoint): the tag
`vlm_sweeps.eval_setting.<[blind/]benchmark>` (naming.TAG_EVAL_SETTING) holds compact canonical JSON

    n               examples actually scored (the predictions' rows, not only what was asked for)
    max_examples    the slim size asked for (benchmarks.max_examples; null: all)
    version         the benchmark's loader and scorer (registry.Benchmark.version), plus the synthetic
                    world generator's for the synthetic suite (data/synthetic.VERSION)
    blind           the blind control (eval.blind)
    max_new_tokens  the benchmark's generation budget
    harness         harness.HARNESS_VERSION (prompt assembly, decoding, candidate scoring)
    dtype           the compute precision (scale.precision)
    examples        a digest of the examples scored (ids, questions, answers, boxes); recorded for
                    audits, not compared (naming.EVAL_SETTING_UNCOMPARED): the synthetic suite samples
                    its subset with the run's seed
    score           the headline metric this evaluation logged, not compared either: a run whose metric
                    no longer equals it was evaluated again by something that recorded no setting

so that analysis ranks runs on a benchmark only where their settings agree (analysis/settings.py).
The params cannot say this: they are immutable and hold the first evaluation's config. Batch size
and the prediction cache never change a score (eval/cache.py) and are not part of a setting.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

from vlm_sweeps import naming


def tag(benchmark: str, blind: bool) -> str:
    """`vlm_sweeps.eval_setting.<[blind/]benchmark>`."""
    return f"{naming.TAG_EVAL_SETTING}{naming.BLIND_PREFIX if blind else ''}{benchmark}"


def examples_digest(rows: Sequence[Mapping[str, Any]]) -> str:
    """12 hex digits over what identifies each scored example (its id, question, answers, box), in
    id order: two evaluations with one digest scored the same examples."""
    keys = sorted(json.dumps([str(r.get("qid")), r.get("question"), r.get("answers"), r.get("box")])
                  for r in rows)
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]


def version(benchmark: str) -> str:
    """The benchmark's version: its registry entry's, plus the synthetic world's for synthetic ones."""
    from vlm_sweeps.eval import registry

    bench = registry.get(benchmark)
    if not bench.synthetic:
        return bench.version
    from vlm_sweeps.data.synthetic import VERSION as WORLD_VERSION

    return f"{bench.version}+world{WORLD_VERSION}"


def record(cfg: Any, benchmark: str, rows: Sequence[Mapping[str, Any]], blind: bool,
           score: float | None = None) -> dict[str, Any]:
    """The setting of one benchmark's evaluation under `cfg` (a composed or plain-dict config), whose
    predictions are `rows` (one per example scored) and whose headline metric is `score`."""
    from vlm_sweeps.eval import registry
    from vlm_sweeps.eval.harness import HARNESS_VERSION

    max_examples = cfg["benchmarks"].get("max_examples")
    return {"n": len(rows), "max_examples": None if max_examples is None else int(max_examples),
            "version": version(benchmark), "blind": bool(blind),
            "max_new_tokens": int(registry.get(benchmark).max_new_tokens), "harness": HARNESS_VERSION,
            "dtype": str(cfg["scale"].get("precision", "fp32")), "examples": examples_digest(rows),
            "score": None if score is None else float(score)}


def encode(setting: Mapping[str, Any]) -> str:
    """Canonical text of a setting: JSON, sorted keys, no spaces (equal settings, equal text)."""
    return json.dumps(dict(setting), sort_keys=True, separators=(",", ":"))


def decode(text: str) -> dict[str, Any]:
    """A setting tag's value as a dict; {} for text that is not a JSON object."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def tags(cfg: Any, predictions: Mapping[str, Sequence[Mapping[str, Any]]], blind: bool,
         metrics: Mapping[str, float]) -> dict[str, str]:
    """The setting tag of every benchmark in `predictions` (un-prefixed names -> rows); `metrics` are
    the evaluation's `<benchmark>/<metric>` (un-prefixed too)."""
    return {tag(name, blind): encode(record(cfg, name, rows, blind, metrics.get(naming.headline_metric(name))))
            for name, rows in predictions.items()}
