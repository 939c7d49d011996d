"""Open-ended VQA benchmarks: VQAv2, GQA, VizWiz, TextVQA (free generation, official scorers).

Expected files under the data root (official archives, unpacked as distributed):

| benchmark | file | from |
|---|---|---|
| vqav2 | vqav2/v2_OpenEnded_mscoco_val2014_questions.json | visualqa.org v2_Questions_Val_mscoco.zip |
| vqav2 | vqav2/v2_mscoco_val2014_annotations.json | visualqa.org v2_Annotations_Val_mscoco.zip |
| vqav2 | coco/val2014/COCO_val2014_<image_id:012d>.jpg | cocodataset.org val2014.zip |
| gqa | gqa/testdev_balanced_questions.json | GQA questions1.2.zip |
| gqa | gqa/images/<imageId>.jpg | GQA images.zip |
| vizwiz | vizwiz/val.json | VizWiz Annotations.zip |
| vizwiz | vizwiz/val/<image> | VizWiz val.zip |
| textvqa | textvqa/TextVQA_0.5.1_val.json | textvqa.org TextVQA_0.5.1_val.json |
| textvqa | textvqa/train_images/<image_id>.jpg | textvqa.org train_val_images.zip |
| textvqa (OCR prompt only) | textvqa/TextVQA_Rosetta_OCR_v0.2_val.json | textvqa.org, if the val json has no `ocr_tokens` |
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Sequence

from vlm_sweeps.eval import scoring
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.eval.families import prompts
from vlm_sweeps.eval.families.files import read_json, require_images, select_subset
from vlm_sweeps.eval.registry import Benchmark, LoadContext, register

PATHS: dict[str, dict[str, str]] = {
    "vqav2": {
        "questions": "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
        "annotations": "vqav2/v2_mscoco_val2014_annotations.json",
        "images": "coco/val2014",
    },
    "gqa": {"questions": "gqa/testdev_balanced_questions.json", "images": "gqa/images"},
    "vizwiz": {"annotations": "vizwiz/val.json", "images": "vizwiz/val"},
    "textvqa": {
        "annotations": "textvqa/TextVQA_0.5.1_val.json",
        "ocr": "textvqa/TextVQA_Rosetta_OCR_v0.2_val.json",
        "images": "textvqa/train_images",
    },
}
HINTS: dict[str, str] = {
    "vqav2": "Download v2_Questions_Val_mscoco.zip and v2_Annotations_Val_mscoco.zip from "
    "https://visualqa.org/download.html into <root>/vqav2/ and COCO val2014 images into <root>/coco/val2014/.",
    "gqa": "Download questions1.2.zip (testdev_balanced_questions.json) and images.zip from "
    "https://cs.stanford.edu/people/dorarad/gqa/download.html into <root>/gqa/ (images in <root>/gqa/images/).",
    "vizwiz": "Download Annotations.zip (val.json) and val.zip from https://vizwiz.org/tasks-and-datasets/vqa/ "
    "into <root>/vizwiz/ (images in <root>/vizwiz/val/).",
    "textvqa": "Download TextVQA_0.5.1_val.json (and TextVQA_Rosetta_OCR_v0.2_val.json for OCR prompts) and "
    "train_val_images.zip from https://textvqa.org/dataset/ into <root>/textvqa/ (images in train_images/).",
}


def _path(ctx: LoadContext, benchmark: str, key: str) -> Path:
    return Path(ctx.root) / PATHS[benchmark][key]


def _finish(benchmark: str, examples: list[EvalExample]) -> list[EvalExample]:
    require_images(benchmark, [ex.image for ex in examples if ex.image], HINTS[benchmark])
    return examples


# --- VQAv2 --------------------------------------------------------------------------------


def load_vqav2(ctx: LoadContext) -> list[EvalExample]:
    """VQAv2 val: the VQA API's questions + annotations JSON, 10 answers per question."""
    hint = HINTS["vqav2"]
    questions = read_json("vqav2", _path(ctx, "vqav2", "questions"), hint)["questions"]
    annotations = read_json("vqav2", _path(ctx, "vqav2", "annotations"), hint)["annotations"]
    by_qid = {ann["question_id"]: ann for ann in annotations}
    missing = [q["question_id"] for q in questions if q["question_id"] not in by_qid]
    if missing:
        raise ValueError(
            f"vqav2: {len(missing)} questions (e.g. {missing[0]}) have no annotation; the questions and "
            "annotations files must come from the same split (val2014)"
        )
    images = _path(ctx, "vqav2", "images")
    examples = [
        EvalExample(
            qid=str(q["question_id"]),
            question=prompts.vqa(q["question"]),
            image=str(images / f"COCO_val2014_{int(q['image_id']):012d}.jpg"),
            answers=tuple(a["answer"] for a in by_qid[q["question_id"]]["answers"]),
            meta={
                "answer_type": by_qid[q["question_id"]].get("answer_type", ""),
                "question_type": by_qid[q["question_id"]].get("question_type", ""),
            },
        )
        for q in select_subset(questions, ctx.max_examples, ctx.seed)
    ]
    return _finish("vqav2", examples)


def score_vqa(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """Official VQA soft accuracy, overall and per answer type when the examples carry one
    (VQAv2: `accuracy_yes_no`, `accuracy_number`, `accuracy_other`)."""
    scoring.check_lengths(predictions, examples)
    scores = [scoring.vqa_soft_accuracy(p, ex.answers) for p, ex in zip(predictions, examples)]
    metrics = {"accuracy": _mean(scores)}
    by_type: dict[str, list[float]] = {}
    for ex, s in zip(examples, scores):
        if ex.meta.get("answer_type"):
            by_type.setdefault(_metric_suffix(ex.meta["answer_type"]), []).append(s)
    metrics.update({f"accuracy_{t}": _mean(v) for t, v in sorted(by_type.items())})
    return metrics


# --- GQA ------------------------------------------------------------------------------------


def load_gqa(ctx: LoadContext) -> list[EvalExample]:
    """GQA testdev-balanced: `{question_id: {imageId, question, answer, ...}}`, one answer each."""
    questions: dict[str, dict[str, Any]] = read_json("gqa", _path(ctx, "gqa", "questions"), HINTS["gqa"])
    images = _path(ctx, "gqa", "images")
    examples = [
        EvalExample(
            qid=str(qid),
            question=prompts.vqa(q["question"]),
            image=str(images / f"{q['imageId']}.jpg"),
            answers=(q["answer"],),
        )
        for qid, q in select_subset(list(questions.items()), ctx.max_examples, ctx.seed)
    ]
    return _finish("gqa", examples)


def score_gqa(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """Exact match after Prismatic's GQA normalisation (punctuation stripped, lowercased)."""
    scoring.check_lengths(predictions, examples)
    return {"accuracy": _mean([scoring.exact_match(p, ex.answers[0]) for ex, p in zip(examples, predictions)])}


# --- VizWiz -------------------------------------------------------------------------------


def load_vizwiz(ctx: LoadContext) -> list[EvalExample]:
    """VizWiz val: a list of `{image, question, answers: [{answer, answer_confidence}], answerable}`."""
    records = read_json("vizwiz", _path(ctx, "vizwiz", "annotations"), HINTS["vizwiz"])
    images = _path(ctx, "vizwiz", "images")
    examples = [
        EvalExample(
            qid=Path(r["image"]).stem,  # VizWiz asks one question per image
            question=prompts.vizwiz(r["question"]),
            image=str(images / r["image"]),
            answers=tuple(a["answer"] for a in r["answers"]),
            meta={"answerable": bool(r.get("answerable", 1)), "answer_type": r.get("answer_type", "")},
        )
        for r in select_subset(records, ctx.max_examples, ctx.seed)
    ]
    return _finish("vizwiz", examples)


def score_vizwiz(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """VQA soft accuracy overall / on answerable / on unanswerable questions."""
    return scoring.vizwiz_accuracy(
        predictions, [ex.answers for ex in examples], [bool(ex.meta.get("answerable", True)) for ex in examples]
    )


# --- TextVQA ------------------------------------------------------------------------------


def load_textvqa(ctx: LoadContext, *, ocr_tokens: bool = False) -> list[EvalExample]:
    """TextVQA val: `{data: [{question_id, image_id, question, answers, ocr_tokens?}]}`.

    `ocr_tokens=True` puts the OCR tokens in the prompt (LLaVA-1.5 style), read from each entry's
    `ocr_tokens` or else from the Rosetta OCR file; the registered benchmark asks without them,
    so TextVQA measures reading text from pixels.
    """
    hint = HINTS["textvqa"]
    records = read_json("textvqa", _path(ctx, "textvqa", "annotations"), hint)["data"]
    records = select_subset(records, ctx.max_examples, ctx.seed)
    ocr: dict[str, list[str]] = {}
    if ocr_tokens and any("ocr_tokens" not in r for r in records):
        rosetta = read_json("textvqa", _path(ctx, "textvqa", "ocr"), hint)["data"]
        ocr = {str(o["image_id"]): list(o["ocr_tokens"]) for o in rosetta}
    images = _path(ctx, "textvqa", "images")
    examples = []
    for r in records:
        tokens = r["ocr_tokens"] if "ocr_tokens" in r else ocr.get(str(r["image_id"]), [])
        question = prompts.textvqa_with_ocr(r["question"], tokens) if ocr_tokens else prompts.vqa(r["question"])
        examples.append(
            EvalExample(
                qid=str(r["question_id"]),
                question=question,
                image=str(images / f"{r['image_id']}.jpg"),
                answers=tuple(r["answers"]),
                meta={"ocr_tokens": tuple(tokens)} if ocr_tokens else {},
            )
        )
    return _finish("textvqa", examples)


# --- helpers ----------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _metric_suffix(label: str) -> str:
    """An answer type as a metric-name fragment: "yes/no" -> "yes_no"."""
    return "".join(c if c.isalnum() else "_" for c in label.lower())


VQAV2 = register(Benchmark("vqav2", load_vqav2, score_vqa, max_new_tokens=16))
GQA = register(Benchmark("gqa", load_gqa, score_gqa, max_new_tokens=16))
VIZWIZ = register(Benchmark("vizwiz", load_vizwiz, score_vizwiz, max_new_tokens=16))
TEXTVQA = register(Benchmark("textvqa", partial(load_textvqa, ocr_tokens=False), score_vqa, max_new_tokens=16))
