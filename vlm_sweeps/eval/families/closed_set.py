"""Closed-set benchmarks: VSR, TallyQA, POPE, AI2D (scored by the model's choice among candidates).

Each example has `mode="closed_set"` and `choices`; the harness picks the candidate with the
highest probability and returns it as an `examples.Choice` carrying every candidate's probability
(vlm-evaluation's `return_string_probabilities`). Multiple-choice questions (TallyQA's counts 0-15,
AI2D's options) are lettered "A", "B", ... in the prompt and the candidates are the letters, as in
vlm-evaluation (`get_mc_prompt_fn`; TallyQA scores A-P, AI2D A-D).

Metrics follow vlm-evaluation's scorers (`harnesses/{vsr,tallyqa,pope,ai2d}.py`): accuracy of the
argmax candidate, and, from the probabilities, `auroc` / `aupr` (binary for POPE's "Yes" and VSR's
"True", multi-class "ovo" / macro for TallyQA and AI2D; `scoring.ranking_metrics`), per split and
pooled. Predictions without probabilities (plain strings) get the accuracies only.

Slim subsets are vlm-evaluation's (`files.select_subset`): N per split for POPE (adversarial,
popular, random), TallyQA (simple, complex) and AI2D (val, test); VSR has no slim set there, so it is
always evaluated whole (1,222 examples).

Expected files under the data root:

| benchmark | file | from |
|---|---|---|
| vsr | vsr/test.jsonl | cambridgeltl/vsr_zeroshot test.jsonl |
| vsr | vsr/images/<image> | VSR images (COCO 2017) |
| tallyqa | tallyqa/test.json | github.com/manoja328/tallyqa tallyqa.zip |
| tallyqa | tallyqa/<image> (VG_100K/, VG_100K_2/, val2014/ as named in test.json) | Visual Genome, COCO |
| pope | pope/coco_pope_{adversarial,popular,random}.json (JSON lines) | github.com/AoiDragon/POPE output/coco/ |
| pope | coco/val2014/<image> | cocodataset.org val2014.zip |
| ai2d | ai2d/questions/<n>.png.json, ai2d/images/<n>.png | ai2d-all.zip |
| ai2d | ai2d/ai2d_test_ids.csv | ai2d_test_ids.csv (AI2 prior-datasets) |
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Sequence

from vlm_sweeps.eval import scoring
from vlm_sweeps.eval.examples import EvalExample, probabilities_of
from vlm_sweeps.eval.families import prompts
from vlm_sweeps.eval.families.files import read_json, read_jsonl, require, require_images, select_subset
from vlm_sweeps.eval.registry import Benchmark, LoadContext, register

log = logging.getLogger(__name__)

PATHS: dict[str, dict[str, str]] = {
    "vsr": {"questions": "vsr/test.jsonl", "images": "vsr/images"},
    "tallyqa": {"questions": "tallyqa/test.json", "images": "tallyqa"},
    "pope": {"questions": "pope/coco_pope_{split}.json", "images": "coco/val2014"},
    "ai2d": {"questions": "ai2d/questions", "images": "ai2d/images", "test_ids": "ai2d/ai2d_test_ids.csv"},
}
HINTS: dict[str, str] = {
    "vsr": "Download test.jsonl from https://huggingface.co/datasets/cambridgeltl/vsr_zeroshot into <root>/vsr/ "
    "and the VSR images (github.com/cambridgeltl/visual-spatial-reasoning) into <root>/vsr/images/.",
    "tallyqa": "Download tallyqa.zip from https://github.com/manoja328/tallyqa (test.json) into <root>/tallyqa/ and "
    "the Visual Genome (VG_100K, VG_100K_2) and COCO val2014 images it names under <root>/tallyqa/.",
    "pope": "Download coco_pope_adversarial.json, coco_pope_popular.json and coco_pope_random.json from "
    "https://github.com/AoiDragon/POPE/tree/main/output/coco into <root>/pope/ and COCO val2014 images into "
    "<root>/coco/val2014/.",
    "ai2d": "Download ai2d-all.zip (http://ai2-website.s3.amazonaws.com/data/ai2d-all.zip) into <root>/ai2d/ "
    "(questions/, images/) and ai2d_test_ids.csv (https://s3-us-east-2.amazonaws.com/prior-datasets/"
    "ai2d_test_ids.csv) into <root>/ai2d/.",
}
POPE_SPLITS = ("adversarial", "popular", "random")
TALLYQA_MAX_COUNT = 15  # TallyQA's answers are counts 0..15: 16 lettered options
AI2D_SPLITS = ("val", "test")  # a diagram listed in ai2d_test_ids.csv is a test diagram, any other val
AI2D_OPTIONS = 4  # vlm-evaluation scores the letters A-D of every AI2D question


def _path(ctx: LoadContext, benchmark: str, key: str) -> Path:
    return Path(ctx.root) / PATHS[benchmark][key]


def _finish(benchmark: str, examples: list[EvalExample]) -> list[EvalExample]:
    require_images(benchmark, [ex.image for ex in examples if ex.image], HINTS[benchmark])
    return examples


# --- VSR ----------------------------------------------------------------------------------------


def load_vsr(ctx: LoadContext) -> list[EvalExample]:
    """VSR zero-shot test: JSON lines `{image, caption, label (1 true / 0 false), relation}`, all of
    them whatever `max_examples` (vlm-evaluation has no slim VSR: "VSR is Tiny -- no slim dataset!")."""
    records = read_jsonl("vsr", _path(ctx, "vsr", "questions"), HINTS["vsr"])
    images = _path(ctx, "vsr", "images")
    examples = [
        EvalExample(
            qid=f"{i}",
            question=prompts.true_false(r["caption"]),
            image=str(images / r["image"]),
            answers=("True" if r["label"] == 1 else "False",),
            choices=("True", "False"),
            mode="closed_set",
            meta={"relation": r.get("relation", "")},
        )
        for i, r in enumerate(records)
    ]
    return _finish("vsr", examples)


# --- TallyQA ------------------------------------------------------------------------------------


def load_tallyqa(ctx: LoadContext) -> list[EvalExample]:
    """TallyQA test: `[{image, question, answer (count), issimple, question_id}]`, in file order; the
    slim subset holds N simple and N complex questions."""
    records = read_json("tallyqa", _path(ctx, "tallyqa", "questions"), HINTS["tallyqa"])
    index = {int(r["question_id"]): r for r in records}  # keyed as vlm-evaluation keys its index
    selected = select_subset(list(index.values()), ctx.max_examples, group=lambda r: bool(r["issimple"]))
    out_of_range = [r for r in selected if not 0 <= int(r["answer"]) <= TALLYQA_MAX_COUNT]
    if out_of_range:
        log.warning("tallyqa: skipping %d questions whose count is above %d", len(out_of_range), TALLYQA_MAX_COUNT)
    options = [str(n) for n in range(TALLYQA_MAX_COUNT + 1)]
    letters = prompts.letters(len(options))
    images = _path(ctx, "tallyqa", "images")
    examples = [
        EvalExample(
            qid=str(r["question_id"]),
            question=prompts.multiple_choice(r["question"], options),
            image=str(images / r["image"]),
            answers=(letters[int(r["answer"])],),
            choices=letters,
            mode="closed_set",
            meta={"split": "simple" if r["issimple"] else "complex", "count": int(r["answer"])},
        )
        for r in selected
        if 0 <= int(r["answer"]) <= TALLYQA_MAX_COUNT
    ]
    return _finish("tallyqa", examples)


def score_tallyqa(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """`TallyQAScorer.score`: accuracy, auroc, aupr pooled ("final") and per split (`simple_*`,
    `complex_*`)."""
    return score_splits(examples, predictions, ("simple", "complex"))


# --- POPE -----------------------------------------------------------------------------------------


def load_pope(ctx: LoadContext) -> list[EvalExample]:
    """POPE's COCO splits: JSON lines `{question_id, image, text, label: "yes"|"no"}` in three files,
    read in the order adversarial, popular, random; the slim subset holds N of each split."""
    records: list[tuple[str, dict[str, Any]]] = []
    for split in POPE_SPLITS:
        path = Path(ctx.root) / PATHS["pope"]["questions"].format(split=split)
        records.extend((split, r) for r in read_jsonl("pope", path, HINTS["pope"]))
    images = _path(ctx, "pope", "images")
    examples = [
        EvalExample(
            qid=f"{split}-{r['question_id']}",  # question ids repeat across the three files
            question=prompts.vqa(r["text"]),
            image=str(images / r["image"]),
            answers=(r["label"],),
            choices=("Yes", "No"),
            mode="closed_set",
            meta={"split": split},
        )
        for split, r in select_subset(records, ctx.max_examples, group=lambda sr: sr[0])
    ]
    return _finish("pope", examples)


def score_pope(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """POPE per split and overall.

    Per split (`adversarial_accuracy`, `popular_f1`, ...): POPE `evaluate.py`'s accuracy, precision,
    recall, f1 and yes_ratio ("yes" positive) on the chosen candidate, and vlm-evaluation's AUROC /
    AUPR of p("Yes") (`PopeScorer.score`). Overall: the mean over the splits present of each
    evaluate.py figure (`accuracy` is vlm-evaluation's POPE-final-Accuracy, the mean of the split
    accuracies) and `auroc` / `aupr` over all examples pooled (POPE-final-AUCROC / -AUCPR).
    """
    scoring.check_lengths(predictions, examples)
    per_split: dict[str, dict[str, float]] = {}
    for split in POPE_SPLITS:
        idx = [i for i, ex in enumerate(examples) if ex.meta.get("split", "random") == split]
        if idx:
            labels = [examples[i].answers[0] for i in idx]
            per_split[split] = scoring.pope_metrics([predictions[i] for i in idx], labels)
    names = next(iter(per_split.values())).keys() if per_split else ()
    metrics = {name: scoring.mean([m[name] for m in per_split.values()]) for name in names}
    for split, split_metrics in per_split.items():
        metrics.update({f"{split}_{name}": value for name, value in split_metrics.items()})
        idx = [i for i, ex in enumerate(examples) if ex.meta.get("split", "random") == split]
        metrics.update({f"{split}_{k}": v for k, v in _ranking([examples[i] for i in idx],
                                                               [predictions[i] for i in idx]).items()})
    metrics.update(_ranking(examples, predictions))
    return metrics


# --- AI2D -----------------------------------------------------------------------------------------


def load_ai2d(ctx: LoadContext) -> list[EvalExample]:
    """AI2D, every question (vlm-evaluation's `build_ai2d_indices`): per-diagram files
    `{imageName, questions: {text: {answerTexts, correctAnswer, questionId}}}`; a diagram listed in
    `ai2d_test_ids.csv` is in the test split, any other in val. The slim subset holds N of each split.

    vlm-evaluation walks the question folder in `os.listdir` order, which depends on the file system,
    so its slim AI2D set cannot be reproduced from the files; here diagrams are taken in the order of
    their numbers (2.png before 10.png), questions in file order.
    """
    hint = HINTS["ai2d"]
    with require("ai2d", _path(ctx, "ai2d", "test_ids"), hint).open(encoding="utf-8") as f:
        test_ids = {int(row[0]) for row in csv.reader(f) if row and row[0].strip()}
    folder = require("ai2d", _path(ctx, "ai2d", "questions"), hint)
    files = sorted(folder.glob("*.json"), key=lambda p: (int(p.name.split(".")[0]), p.name))
    records = []
    for file in files:
        diagram = read_json("ai2d", file, hint)
        split = "test" if int(file.name.split(".")[0]) in test_ids else "val"
        for text, q in diagram["questions"].items():
            records.append((diagram["imageName"], text, q, split))
    images = _path(ctx, "ai2d", "images")
    letters = prompts.letters(AI2D_OPTIONS)
    examples = []
    for image_name, text, q, split in select_subset(records, ctx.max_examples, group=lambda r: r[3]):
        examples.append(
            EvalExample(
                qid=str(q["questionId"]),
                question=prompts.multiple_choice(text, q["answerTexts"]),
                image=str(images / image_name),
                answers=(prompts.letters(26)[int(q["correctAnswer"])],),
                choices=letters,
                mode="closed_set",
                meta={"answer_text": q["answerTexts"][int(q["correctAnswer"])], "split": split},
            )
        )
    return _finish("ai2d", examples)


def score_ai2d(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """`AI2DScorer.score`: accuracy, auroc, aupr pooled over val and test ("final") and per split
    (`val_*`, `test_*`)."""
    return score_splits(examples, predictions, AI2D_SPLITS)


# --- shared scorers -------------------------------------------------------------------------------


def score_choice(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """`VSRScorer.score` (and the pooled part of the others): accuracy of the chosen candidates, and
    `auroc` / `aupr` when the predictions carry probabilities."""
    scoring.check_lengths(predictions, examples)
    metrics = {"accuracy": scoring.choice_accuracy(predictions, [ex.answers[0] for ex in examples])}
    metrics.update(_ranking(examples, predictions))
    return metrics


def score_splits(
    examples: Sequence[EvalExample], predictions: Sequence[str], splits: Sequence[str]
) -> dict[str, float]:
    """`score_choice` over all examples (accuracy pooled: correct / total, as vlm-evaluation's
    "final"), then over each split present, prefixed `<split>_`."""
    metrics = score_choice(examples, predictions)
    for split in splits:
        idx = [i for i, ex in enumerate(examples) if ex.meta.get("split") == split]
        if idx:
            part = score_choice([examples[i] for i in idx], [predictions[i] for i in idx])
            metrics.update({f"{split}_{k}": v for k, v in part.items()})
    return metrics


def _ranking(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """AUROC / AUPR from the candidates' probabilities; nothing when a prediction has none."""
    probabilities = [probabilities_of(p) for p in predictions]
    if not examples or any(p is None for p in probabilities):
        return {}
    labels = [[c.casefold() for c in ex.choices].index(ex.answers[0].casefold()) for ex in examples]
    return scoring.ranking_metrics(labels, probabilities)  # type: ignore[arg-type]


# Closed-set answers are chosen from the candidates' probabilities; one token is all they need.
VSR = register(Benchmark("vsr", load_vsr, score_choice, max_new_tokens=1))
TALLYQA = register(Benchmark("tallyqa", load_tallyqa, score_tallyqa, max_new_tokens=1))
POPE = register(Benchmark("pope", load_pope, score_pope, max_new_tokens=1))
AI2D = register(Benchmark("ai2d", load_ai2d, score_ai2d, max_new_tokens=1))
