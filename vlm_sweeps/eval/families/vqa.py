"""Open-ended VQA benchmarks: VQAv2, GQA, VizWiz, TextVQA asked without and with OCR tokens
(free generation, scored as vlm-evaluation scores them: see `families/answers.py`).

Examples are in file order as vlm-evaluation indexes them (`build_*_indices`); slim subsets are its
`metadata-slim-N` sets (`files.select_subset`). Expected files under the data root (official
archives, unpacked as distributed):

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
| textvqa, textvqa_ocr | textvqa/textvqa_val_v051_ocr.jsonl (or llava_textvqa_val_v051_ocr.jsonl) | LLaVA-1.5's questions with OCR tokens, which vlm-evaluation downloads; optional, see `load_textvqa` |
| textvqa_ocr, without that jsonl | textvqa/TextVQA_Rosetta_OCR_v0.2_val.json | textvqa.org, if the val json has no `ocr_tokens` |
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from vlm_sweeps.eval import scoring
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.eval.families import prompts
from vlm_sweeps.eval.families.files import read_json, read_jsonl, require_images, select_subset
from vlm_sweeps.eval.registry import Benchmark, LoadContext, register

log = logging.getLogger(__name__)

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
        # vlm-evaluation's download name of LLaVA-1.5's llava_textvqa_val_v051_ocr.jsonl; either name is read
        "ocr_questions": "textvqa/textvqa_val_v051_ocr.jsonl",
        "llava_ocr_questions": "textvqa/llava_textvqa_val_v051_ocr.jsonl",
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
    "textvqa": "Download TextVQA_0.5.1_val.json and train_val_images.zip from https://textvqa.org/dataset/ into "
    "<root>/textvqa/ (images in train_images/), and LLaVA-1.5's llava_textvqa_val_v051_ocr.jsonl (the questions "
    "vlm-evaluation asks; else TextVQA_Rosetta_OCR_v0.2_val.json from textvqa.org for the OCR tokens) beside it.",
}


def _path(ctx: LoadContext, benchmark: str, key: str) -> Path:
    return Path(ctx.root) / PATHS[benchmark][key]


def _finish(benchmark: str, examples: list[EvalExample]) -> list[EvalExample]:
    require_images(benchmark, [ex.image for ex in examples if ex.image], HINTS[benchmark])
    return examples


# --- VQAv2 --------------------------------------------------------------------------------


def load_vqav2(ctx: LoadContext) -> list[EvalExample]:
    """VQAv2 val: the VQA API's questions + annotations JSON, 10 answers per question, in the order of
    the annotations file (vlm-evaluation's `build_vqav2_indices` iterates the annotations)."""
    hint = HINTS["vqav2"]
    questions = read_json("vqav2", _path(ctx, "vqav2", "questions"), hint)["questions"]
    annotations = read_json("vqav2", _path(ctx, "vqav2", "annotations"), hint)["annotations"]
    by_qid = {q["question_id"]: q for q in questions}
    missing = [a["question_id"] for a in annotations if a["question_id"] not in by_qid]
    if missing:
        raise ValueError(
            f"vqav2: {len(missing)} annotations (e.g. question {missing[0]}) have no question; the questions and "
            "annotations files must come from the same split (val2014)"
        )
    index = {int(a["question_id"]): a for a in annotations}  # keyed as vlm-evaluation keys its index
    images = _path(ctx, "vqav2", "images")
    examples = [
        EvalExample(
            qid=str(a["question_id"]),
            question=prompts.vqa(by_qid[a["question_id"]]["question"]),
            image=str(images / f"COCO_val2014_{int(a['image_id']):012d}.jpg"),
            answers=tuple(ans["answer"] for ans in a["answers"]),
            meta={"answer_type": a.get("answer_type", ""), "question_type": a.get("question_type", "")},
        )
        for a in select_subset(list(index.values()), ctx.max_examples)
    ]
    return _finish("vqav2", examples)


def score_vqa(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """vlm-evaluation's `run_vqa_evaluation` (vqav2/eval.py `VQAEvaluator`): VQA accuracy overall and
    per answer type when the examples carry one (`accuracy_yes_no`, `accuracy_number`,
    `accuracy_other`); see `answers.vqav2_accuracy`."""
    scoring.check_lengths(predictions, examples)
    scores = [scoring.vqav2_accuracy(p, ex.answers) for p, ex in zip(predictions, examples)]
    metrics = {"accuracy": scoring.mean(scores)}
    by_type: dict[str, list[float]] = {}
    for ex, s in zip(examples, scores):
        if ex.meta.get("answer_type"):
            by_type.setdefault(_metric_suffix(ex.meta["answer_type"]), []).append(s)
    metrics.update({f"accuracy_{t}": scoring.mean(v) for t, v in sorted(by_type.items())})
    return metrics


# --- GQA ------------------------------------------------------------------------------------


def load_gqa(ctx: LoadContext) -> list[EvalExample]:
    """GQA testdev-balanced: `{question_id: {imageId, question, answer, isBalanced, ...}}`, one answer
    each, in file order."""
    questions: dict[str, dict[str, Any]] = read_json("gqa", _path(ctx, "gqa", "questions"), HINTS["gqa"])
    images = _path(ctx, "gqa", "images")
    examples = [
        EvalExample(
            qid=str(qid),
            question=prompts.vqa(q["question"]),
            image=str(images / f"{q['imageId']}.jpg"),
            answers=(q["answer"],),
            meta={"balanced": bool(q.get("isBalanced", True))},
        )
        for qid, q in select_subset(list(questions.items()), ctx.max_examples)
    ]
    return _finish("gqa", examples)


def score_gqa(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """gqa/eval.py's `Accuracy` on vlm-evaluation's cleaned predictions (`answers.gqa_match`), over the
    balanced questions (the script scores only those; all of testdev-balanced is)."""
    scoring.check_lengths(predictions, examples)
    scores = [scoring.gqa_match(p, ex.answers[0])
              for ex, p in zip(examples, predictions) if ex.meta.get("balanced", True)]
    return {"accuracy": scoring.mean(scores)}


# --- VizWiz -------------------------------------------------------------------------------


def load_vizwiz(ctx: LoadContext) -> list[EvalExample]:
    """VizWiz val: a list of `{image, question, answers: [{answer, answer_confidence}], answerable}`,
    in file order; the answers are kept as written (the reference compares them raw)."""
    records = read_json("vizwiz", _path(ctx, "vizwiz", "annotations"), HINTS["vizwiz"])
    images = _path(ctx, "vizwiz", "images")
    examples = [
        EvalExample(
            qid=Path(r["image"]).stem,  # VizWiz asks one question per image
            question=prompts.vizwiz(r["question"]),
            image=str(images / r["image"]),
            answers=tuple(a["answer"] for a in r["answers"]),
            meta={"answerable": int(r["answerable"]) == 1, "answer_type": r.get("answer_type", "")},
        )
        for r in select_subset(records, ctx.max_examples)
    ]
    return _finish("vizwiz", examples)


def score_vizwiz(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """vlm-evaluation's `VizWizScorer.score`: accuracy overall / answerable / unanswerable, and the
    unanswerability F1 and average precision (see `scoring.vizwiz_accuracy`)."""
    return scoring.vizwiz_accuracy(
        predictions, [ex.answers for ex in examples], [bool(ex.meta.get("answerable", True)) for ex in examples]
    )


# --- TextVQA ------------------------------------------------------------------------------

_OCR_LINE = "\nReference OCR token:"


def load_textvqa(ctx: LoadContext, *, ocr_tokens: bool = False) -> list[EvalExample]:
    """TextVQA val: `{data: [{question_id, image_id, question, answers, ocr_tokens?}]}`, in file order.

    vlm-evaluation asks each question twice (`TextVQATaskRunner`): with the OCR tokens in the prompt
    (`textvqa_ocr`, its "TextVQA-OCR") and without (`textvqa`, "TextVQA-Pure"). Its question texts come
    from LLaVA-1.5's `textvqa_val_v051_ocr.jsonl`, paired with the val json by position: the OCR prompt
    is that text, the plain one the text before "\nReference OCR token:". Without that file, the
    plain prompt is the val json's question and the OCR prompt is rebuilt in LLaVA's form from each
    entry's `ocr_tokens` (or the Rosetta OCR file), which need not be the tokens LLaVA's file lists.
    """
    name, hint = ("textvqa_ocr" if ocr_tokens else "textvqa"), HINTS["textvqa"]
    records = read_json(name, _path(ctx, "textvqa", "annotations"), hint)["data"]
    texts = _llava_questions(ctx, name, records)
    index = {int(r["question_id"]): (r, texts[i] if texts else None) for i, r in enumerate(records)}
    selected = select_subset(list(index.values()), ctx.max_examples)
    ocr: dict[str, list[str]] = {}
    if ocr_tokens and texts is None and any("ocr_tokens" not in r for r, _ in selected):
        rosetta = read_json(name, _path(ctx, "textvqa", "ocr"), hint)["data"]
        ocr = {str(o["image_id"]): list(o["ocr_tokens"]) for o in rosetta}
    images = _path(ctx, "textvqa", "images")
    examples = []
    for r, text in selected:
        if text is not None:
            question = prompts.vqa(text if ocr_tokens else text.split(_OCR_LINE)[0])
        elif ocr_tokens:
            tokens = r["ocr_tokens"] if "ocr_tokens" in r else ocr.get(str(r["image_id"]), [])
            question = prompts.textvqa_with_ocr(r["question"], tokens)
        else:
            question = prompts.vqa(r["question"])
        examples.append(
            EvalExample(
                qid=str(r["question_id"]),
                question=question,
                image=str(images / f"{r['image_id']}.jpg"),
                answers=tuple(r["answers"]),
            )
        )
    require_images(name, [ex.image for ex in examples], hint)
    return examples


def _llava_questions(ctx: LoadContext, name: str, records: list[dict[str, Any]]) -> list[str] | None:
    """The `text` of each line of LLaVA's OCR question file, aligned with `records`; None without it."""
    for key in ("ocr_questions", "llava_ocr_questions"):
        path = _path(ctx, "textvqa", key)
        if path.exists():
            break
    else:
        log.info("%s: no %s; prompts are built from the val json", name, PATHS["textvqa"]["ocr_questions"])
        return None
    lines = read_jsonl(name, path, HINTS["textvqa"])
    texts = [str(line["text"]) for line in lines]
    bad = [i for i, (t, r) in enumerate(zip(texts, records))
           if t.split("\n")[0].strip().lower() != str(r["question"]).strip().lower()]
    if len(texts) != len(records) or bad:
        where = f"line {bad[0] + 1} asks {texts[bad[0]].splitlines()[0]!r}" if bad else f"{len(texts)} lines"
        raise ValueError(
            f"{name}: {path.name} does not match {PATHS['textvqa']['annotations']} line by line ({where}, "
            f"for {len(records)} questions); both must be the released val files"
        )
    return texts


def score_textvqa(examples: Sequence[EvalExample], predictions: Sequence[str]) -> dict[str, float]:
    """m4c_evaluators.py `TextVQAAccuracyEvaluator.eval_pred_list` (see `answers.textvqa_accuracy`)."""
    scoring.check_lengths(predictions, examples)
    return {"accuracy": scoring.mean([scoring.textvqa_accuracy(p, ex.answers) for p, ex in zip(predictions, examples)])}


# --- helpers ----------------------------------------------------------------------------------


def _metric_suffix(label: str) -> str:
    """An answer type as a metric-name fragment: "yes/no" -> "yes_no"."""
    return "".join(c if c.isalnum() else "_" for c in label.lower())


_BUDGET = prompts.MAX_NEW_TOKENS
VQAV2 = register(Benchmark("vqav2", load_vqav2, score_vqa, max_new_tokens=_BUDGET))
GQA = register(Benchmark("gqa", load_gqa, score_gqa, max_new_tokens=_BUDGET))
VIZWIZ = register(Benchmark("vizwiz", load_vizwiz, score_vizwiz, max_new_tokens=_BUDGET))
TEXTVQA = register(Benchmark("textvqa", partial(load_textvqa, ocr_tokens=False), score_textvqa, max_new_tokens=_BUDGET))
TEXTVQA_OCR = register(
    Benchmark("textvqa_ocr", partial(load_textvqa, ocr_tokens=True), score_textvqa, max_new_tokens=_BUDGET)
)
