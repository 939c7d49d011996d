"""`benchmarks=paper` on fixture files in their released schemas: every run logs the metrics the
reference scorers report (AUROC / AUPR per split and pooled, VizWiz unanswerability, TextVQA with
and without OCR tokens, AI2D val / test / pooled), and the candidates' probabilities behind them
survive the prediction cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import pytest

from tests.conftest import compose
from vlm_sweeps.eval.cache import PredictionCache
from vlm_sweeps.eval.examples import Choice, EvalExample
from vlm_sweeps.eval.paper import PAPER_BENCHMARKS
from vlm_sweeps.eval.suite import run_suite

# What every paper run logs, beyond the headline figures (fixture splits hold at least two classes).
NEW_METRICS = {
    "pope": ["auroc", "aupr"] + [f"{s}_{m}" for s in ("adversarial", "popular", "random") for m in ("auroc", "aupr")],
    "vsr": ["auroc", "aupr"],
    "tallyqa": ["auroc", "aupr", "simple_auroc", "simple_aupr", "complex_auroc", "complex_aupr"],
    "ai2d": [f"{s}{m}" for s in ("", "val_", "test_") for m in ("accuracy", "auroc", "aupr")],
    "vizwiz": ["unanswerable_f1", "unanswerable_ap"],
    "textvqa": ["accuracy"],
    "textvqa_ocr": ["accuracy"],
    "refcoco": ["lenient_acc_iou50"],
    "ocid_ref": ["lenient_acc_iou25", "acc_iou25_min_clutter", "acc_iou25_medium_clutter", "acc_iou25_max_clutter"],
}


def _unit(text: str) -> float:
    """A stable pseudo-random number in (0, 1) for a string."""
    return (int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) + 1) / (2**32 + 2)


class StubAnswerer:
    """Answers like the harness does: text for generated examples, a `Choice` with normalised
    candidate probabilities for closed-set ones (the values depend on the question only)."""

    blind = False
    dtype_name = "fp32"

    def __init__(self) -> None:
        self.answered = 0

    def answer(self, examples: Sequence[EvalExample], batch_size: int, max_new_tokens: int, progress=None) -> list[str]:
        self.answered += len(examples)
        out: list[str] = []
        for ex in examples:
            if ex.mode == "closed_set":
                weights = [_unit(f"{ex.qid}/{ex.question}/{c}") for c in ex.choices]
                probs = [w / sum(weights) for w in weights]
                best = max(range(len(probs)), key=lambda k: (probs[k], -k))
                out.append(Choice(ex.choices[best], probs))
            elif ex.box is not None:
                out.append("[" + ", ".join(str(v) for v in ex.box) + "]")
            else:
                out.append("unanswerable" if "Unanswerable" in ex.question else ex.answers[0])
            if progress is not None:
                progress.update(1)
        return out


@pytest.fixture(scope="module")
def paper_cfg():
    return compose(["benchmarks=paper"])


def suite(answerer, names, root: Path, **kwargs):
    options = {"world_dir": None, "data_root": root, "max_examples": None, "batch_size": 4, "seed": 7}
    return run_suite(answerer, list(names), **{**options, **kwargs})


def test_paper_config_runs_every_benchmark_and_logs_the_reference_metrics(paper_root: Path, paper_cfg) -> None:
    assert list(paper_cfg.benchmarks.suite) == list(PAPER_BENCHMARKS)
    slim = paper_cfg.benchmarks.max_examples
    result = suite(StubAnswerer(), paper_cfg.benchmarks.suite, paper_root, max_examples=slim)
    assert not result.skipped and set(result.predictions) == set(PAPER_BENCHMARKS)
    missing = [f"{b}/{m}" for b, names in NEW_METRICS.items() for m in names if f"{b}/{m}" not in result.metrics]
    assert not missing
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    pope_row = result.predictions["pope"][0]
    assert set(pope_row["probabilities"]) == {"Yes", "No"}
    assert sum(pope_row["probabilities"].values()) == pytest.approx(1)
    assert pope_row["prediction"] in ("Yes", "No") and type(pope_row["prediction"]) is str
    json.dumps(result.predictions)  # the predictions artifact is plain JSON


def test_probabilities_survive_the_prediction_cache(paper_root: Path, tmp_path: Path) -> None:
    cache, names = PredictionCache(tmp_path), ["pope", "tallyqa", "vqav2"]
    first = suite(StubAnswerer(), names, paper_root, cache=cache, model_key="sig-w")
    again = StubAnswerer()
    second = suite(again, names, paper_root, cache=cache, model_key="sig-w")
    assert again.answered == 0 and sum(second.generated.values()) == 0
    assert second.metrics == first.metrics and second.predictions == first.predictions
    assert "pope/auroc" in second.metrics


def test_a_cached_bare_candidate_is_answered_again(paper_root: Path, tmp_path: Path) -> None:
    """A closed-set answer cached without probabilities (before they were kept) would leave the
    AUROC / AUPR metrics out: it counts as missing."""
    cache = PredictionCache(tmp_path)
    suite(StubAnswerer(), ["pope"], paper_root, cache=cache, model_key="sig-w")
    (path,) = list(tmp_path.rglob("pope.*.jsonl"))
    header, *rows = path.read_text().splitlines()
    bare = [json.loads(r) for r in rows]
    for r in bare:
        r["prediction"] = json.loads(r["prediction"])["choice"]
    path.write_text("\n".join([header] + [json.dumps(r) for r in bare]) + "\n")
    again = StubAnswerer()
    result = suite(again, ["pope"], paper_root, cache=cache, model_key="sig-w")
    assert again.answered == 6 and "pope/auroc" in result.metrics


def test_choice_encoding_round_trip() -> None:
    choice = Choice("B", (0.25, 0.5, 0.25))
    back = Choice.decode(choice.encode(), ("A", "B", "C"))
    assert back == "B" and back.probabilities == (0.25, 0.5, 0.25)
    assert Choice.decode(choice.encode(), ("A", "B")) is None  # another example's candidates
    assert Choice.decode("B", ("A", "B", "C")) is None  # a bare candidate
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(choice)).probabilities == copy.deepcopy(choice).probabilities == (0.25, 0.5, 0.25)
