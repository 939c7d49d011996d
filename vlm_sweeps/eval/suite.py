"""Run the configured benchmark suite with one model: load -> answer -> score."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from vlm_sweeps import naming
from vlm_sweeps.eval import registry
from vlm_sweeps.eval.harness import Answerer
from vlm_sweeps.eval.registry import LoadContext

log = logging.getLogger(__name__)


def evaluate_suite(answerer: Answerer, suite: Sequence[str], *, world_dir: Path | None, data_root: Path,
                   max_examples: int | None, batch_size: int, seed: int, progress: bool = False
                   ) -> tuple[dict[str, float], dict[str, list[dict]]]:
    """Metrics `<benchmark>/<metric>` for every benchmark, and the predictions of each."""
    from tqdm.auto import tqdm

    metrics: dict[str, float] = {}
    predictions: dict[str, list[dict]] = {}
    for name in suite:
        bench = registry.get(name)
        root = world_dir if bench.synthetic else data_root
        examples = bench.load(LoadContext(Path(root), max_examples, seed))
        with tqdm(total=len(examples), desc=f"eval {name}", disable=None if progress else True, leave=False) as bar:
            preds = answerer.answer(examples, batch_size, bench.max_new_tokens, progress=bar)
        scores = bench.score(examples, preds)
        metrics.update({naming.metric_name(name, k): float(v) for k, v in scores.items()})
        predictions[name] = [{"qid": ex.qid, "question": ex.question, "prediction": p, "answers": list(ex.answers),
                              **({"box": list(ex.box)} if ex.box else {})} for ex, p in zip(examples, preds)]
        log.info("%s: %s", name, ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
    return metrics, predictions
