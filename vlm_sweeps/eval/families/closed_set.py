"""Closed-set benchmarks: VSR, TallyQA, POPE, AI2D (scored by the model's choice among candidates).

Each example has `mode="closed_set"` and `choices`; the harness picks the candidate with the
highest next-token probability (as Prismatic does) and passes it as the prediction. Multiple
choice questions (TallyQA's counts 0-15, AI2D's 4 options) are lettered "A", "B", ... in the
prompt and the candidates are the letters, which are single tokens for every tokenizer.

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
from vlm_sweeps.eval.examples import EvalExample
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


def _path(ctx: LoadContext, benchmark: str, key: str) -> Path:
    return Path(ctx.root) / PATHS[benchmark][key]


def _finish(benchmark: str, examples: list[EvalExample]) -> list[EvalExample]:
    require_images(benchmark, [ex.image for ex in examples if ex.image], HINTS[benchmark])
    return examples


# --- VSR ----------------------------------------------------------------------------------------


def load_vsr(ctx: LoadContext) -> list[EvalExample]:
    """VSR zero-shot test: JSON lines `{image, caption, label (1 true / 0 false), relation}`."""
    records = read_jsonl("vsr", _path(ctx, "vsr", "questions"), HINTS["vsr"])
    images = _path(ctx, "vsr", "images")
    examples = [
        EvalExample(
            qid=f"{i}",
            question=prompts.true_false(r["caption"]),
            image=str(images / r["image"]),
            answers=("True" if int(r["label"]) == 1 else "False",),
            choices=("True", "False"),
            mode="closed_set",
            meta={"relation": r.get("relation", "")},
        )
        for i, r in select_subset(list(enumerate(records)), ctx.max_examples, ctx.seed)
    ]
    return _finish("vsr", examples)


# --- TallyQA ------------------------------------------------------------------------------------


def load_tallyqa(ctx: LoadContext) -> list[EvalExample]:
    """TallyQA test: `[{image, question, answer (count), issimple, question_id}]`; the slim subset
    balances the simple and complex questions."""
    records = read_json("tallyqa", _path(ctx, "tallyqa", "questions"), HINTS["tallyqa"])
    out_of_range = [r for r in records if not 0 <= int(r["answer"]) <= TALLYQA_MAX_COUNT]
    if out_of_range:
        log.warning("tallyqa: skipping %d questions whose count is above %d", len(out_of_range), TALLYQA_MAX_COUNT)
    records = [(i, r) for i, r in enumerate(records) if 0 <= int(r["answer"]) <= TALLYQA_MAX_COUNT]
    options = [str(n) for n in range(TALLYQA_MAX_COUNT + 1)]
    letters = prompts.letters(len(options))
    images = _path(ctx, "tallyqa", "images")
    examples = [
        EvalExample(
            qid=str(r.get("question_id", i)),
            question=prompts.multiple_choice(r["question"], options),
            image=str(images / r["image"]),
            answers=(letters[int(r["answer"])],),
            choices=letters,
            mode="closed_set",
            meta={"split": "simple" if r.get("issimple") else "complex", "count": int(r["answer"])},
        )
        for i, r in select_subset(records, ctx.max_examples, ctx.seed, group=lambda ir: bool(ir[1].get("issimple")))
    ]
    return _finish("tallyqa", examples)


def score_tallyqa(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """Accuracy overall and on the simple / complex questions."""
    metrics = score_choice(examples, predictions)
    for split in ("simple", "complex"):
        idx = [i for i, ex in enumerate(examples) if ex.meta.get("split") == split]
        if idx:
            metrics[f"{split}_accuracy"] = scoring.choice_accuracy(
                [predictions[i] for i in idx], [examples[i].answers[0] for i in idx]
            )
    return metrics


# --- POPE -----------------------------------------------------------------------------------------


def load_pope(ctx: LoadContext) -> list[EvalExample]:
    """POPE's COCO splits: JSON lines `{question_id, image, text, label: "yes"|"no"}` in three files;
    the slim subset balances the splits."""
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
            answers=(r["label"].strip().lower(),),
            choices=("Yes", "No"),
            mode="closed_set",
            meta={"split": split},
        )
        for split, r in select_subset(records, ctx.max_examples, ctx.seed, group=lambda sr: sr[0])
    ]
    return _finish("pope", examples)


def score_pope(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """POPE metrics per split (`adversarial_accuracy`, `popular_f1`, ...) and their mean over the
    splits present (`accuracy`, `f1`, ...), the mean being Prismatic's headline POPE accuracy."""
    scoring.check_lengths(predictions, examples)
    per_split: dict[str, dict[str, float]] = {}
    for split in POPE_SPLITS:
        idx = [i for i, ex in enumerate(examples) if ex.meta.get("split", "random") == split]
        if idx:
            labels = [examples[i].answers[0] for i in idx]
            per_split[split] = scoring.pope_metrics([predictions[i] for i in idx], labels)
    if not per_split:  # examples without a split (e.g. hand-made): one pooled set
        per_split["all"] = scoring.pope_metrics(list(predictions), [ex.answers[0] for ex in examples])
    names = next(iter(per_split.values())).keys()
    metrics = {name: sum(m[name] for m in per_split.values()) / len(per_split) for name in names}
    for split, split_metrics in per_split.items():
        if split != "all":
            metrics.update({f"{split}_{name}": value for name, value in split_metrics.items()})
    return metrics


# --- AI2D -----------------------------------------------------------------------------------------


def load_ai2d(ctx: LoadContext) -> list[EvalExample]:
    """AI2D test: per-diagram question files `{imageName, questions: {text: {answerTexts,
    correctAnswer, questionId}}}`, restricted to the diagrams listed in `ai2d_test_ids.csv`."""
    hint = HINTS["ai2d"]
    with require("ai2d", _path(ctx, "ai2d", "test_ids"), hint).open(encoding="utf-8") as f:
        test_ids = {row[0].strip() for row in csv.reader(f) if row and row[0].strip()}
    folder = require("ai2d", _path(ctx, "ai2d", "questions"), hint)
    files = sorted(folder.glob("*.json"), key=lambda p: (len(p.name), p.name))  # 2.png.json before 10.png.json
    records = []
    for file in files:
        if file.name.split(".")[0] not in test_ids:
            continue
        diagram = read_json("ai2d", file, hint)
        for text, q in diagram["questions"].items():
            records.append((diagram["imageName"], text, q))
    images = _path(ctx, "ai2d", "images")
    examples = []
    for image_name, text, q in select_subset(records, ctx.max_examples, ctx.seed):
        letters = prompts.letters(len(q["answerTexts"]))
        examples.append(
            EvalExample(
                qid=str(q["questionId"]),
                question=prompts.multiple_choice(text, q["answerTexts"]),
                image=str(images / image_name),
                answers=(letters[int(q["correctAnswer"])],),
                choices=letters,
                mode="closed_set",
                meta={"answer_text": q["answerTexts"][int(q["correctAnswer"])]},
            )
        )
    return _finish("ai2d", examples)


# --- shared scorer -------------------------------------------------------------------------------


def score_choice(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """Accuracy of the chosen candidates (VSR, AI2D; the base of TallyQA's scorer)."""
    scoring.check_lengths(predictions, examples)
    return {"accuracy": scoring.choice_accuracy(predictions, [ex.answers[0] for ex in examples])}


# Closed-set answers are chosen from the candidates' probabilities; one token is all they need.
VSR = register(Benchmark("vsr", load_vsr, score_choice, max_new_tokens=1))
TALLYQA = register(Benchmark("tallyqa", load_tallyqa, score_tallyqa, max_new_tokens=1))
POPE = register(Benchmark("pope", load_pope, score_pope, max_new_tokens=1))
AI2D = register(Benchmark("ai2d", load_ai2d, score_choice, max_new_tokens=1))
