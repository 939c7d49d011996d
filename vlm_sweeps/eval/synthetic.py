"""The synthetic suite (scale=tiny): the paper's task families on held-out synthetic scenes, scored
with the same metric definitions as the real benchmarks, plus the three planted-effect benchmarks of
data/synthetic.py (synth_shape: what `naive` resizing distorts, synth_margin: what `crop` cuts away,
synth_fine: what a lower resolution blurs). Closed-set benchmarks also log `chance`, the accuracy of a
uniform guess over each question's candidates: the floor analysis draws their radar spokes from when the
runs carry no blind control."""

from __future__ import annotations

import json
import random
from typing import Sequence

from vlm_sweeps.eval import scoring
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.eval.registry import Benchmark, LoadContext, register


def _loader(name: str, mode: str):
    def load(ctx: LoadContext) -> list[EvalExample]:
        path = ctx.root / "eval" / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"benchmark {name}: {path} is missing; it is written with the synthetic "
                                    "world (data/synthetic.py) - delete the world's cache folder to rebuild it")
        items = json.loads(path.read_text())
        if ctx.max_examples is not None and ctx.max_examples < len(items):
            items = random.Random(ctx.seed).sample(items, ctx.max_examples)
        return [EvalExample(qid=it["qid"], question=it["question"], image=str(ctx.root / it["image"]),
                            answers=tuple(it.get("answers", [it["answer"]])), choices=tuple(it.get("choices", ())),
                            box=tuple(it["box"]) if "box" in it else None, mode=mode)  # type: ignore[arg-type]
                for it in items]
    return load


def _vqa(examples: Sequence[EvalExample], preds: Sequence[str]) -> dict[str, float]:
    scores = [scoring.vqa_soft_accuracy(p, list(ex.answers)) for ex, p in zip(examples, preds)]
    return {"accuracy": sum(scores) / len(scores)}


def _chance(examples: Sequence[EvalExample]) -> float:
    return sum(1 / len(ex.choices) for ex in examples) / len(examples)


def _choice(examples: Sequence[EvalExample], preds: Sequence[str]) -> dict[str, float]:
    return {"accuracy": scoring.choice_accuracy(list(preds), [ex.answers[0] for ex in examples]),
            "chance": _chance(examples)}


def _pope(examples: Sequence[EvalExample], preds: Sequence[str]) -> dict[str, float]:
    return {**scoring.pope_metrics(list(preds), [ex.answers[0] for ex in examples]), "chance": _chance(examples)}


def _ref(examples: Sequence[EvalExample], preds: Sequence[str]) -> dict[str, float]:
    ious = []
    for ex, p in zip(examples, preds):
        box = scoring.parse_box(p)
        ious.append(scoring.box_iou(box, ex.box) if box is not None else 0.0)
    return {"acc_iou50": sum(i >= 0.5 for i in ious) / len(ious), "mean_iou": sum(ious) / len(ious),
            "parse_rate": sum(scoring.parse_box(p) is not None for p in preds) / len(preds)}


for _name, _mode, _score, _budget in (("synth_vqa", "generate", _vqa, 6), ("synth_count", "closed_set", _choice, 1),
                                      ("synth_spatial", "closed_set", _choice, 1), ("synth_pope", "closed_set", _pope, 1),
                                      ("synth_ref", "generate", _ref, 28), ("synth_text", "generate", _vqa, 6),
                                      ("synth_shape", "closed_set", _choice, 1), ("synth_margin", "closed_set", _choice, 1),
                                      ("synth_fine", "closed_set", _choice, 1)):
    register(Benchmark(_name, _loader(_name, _mode), _score, max_new_tokens=_budget, synthetic=True))
