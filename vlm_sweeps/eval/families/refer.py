"""Referring-expression benchmarks: RefCOCO, RefCOCO+, RefCOCOg (val) and OCID-Ref (val).

The model generates a box; `scoring.parse_box` reads the first normalised `[x1, y1, x2, y2]`
(anything unparsable is wrong) and accuracy is the share with IoU >= 0.5 (RefCOCO*) or >= 0.25
(OCID-Ref, as in its paper). Targets are normalised by the image's width and height.

Expected files under the data root. RefCOCO* come in two JSON forms; pickles are never opened
(unpickling runs code), so `refs(*).p` from the REFER archives must be converted once to JSON:

| benchmark | files (first form found wins) |
|---|---|
| refcoco | refcoco/refs(unc).json + refcoco/instances.json (REFER, pickle converted), or refcoco/finetune_refcoco_val.json (MDETR) |
| refcoco+ | refcoco+/refs(unc).json + refcoco+/instances.json, or refcoco+/finetune_refcoco+_val.json |
| refcocog | refcocog/refs(umd).json + refcocog/instances.json, or refcocog/finetune_refcocog_val.json |
| all three | coco/train2014/COCO_train2014_<image_id:012d>.jpg (cocodataset.org train2014.zip) |
| ocid_ref | ocid_ref/val_expressions.json (OCID-Ref) + ocid_ref/OCID-dataset/<scene_path> (OCID) |
"""

from __future__ import annotations

from bisect import bisect_left
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from vlm_sweeps.eval import scoring
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.eval.families import prompts
from vlm_sweeps.eval.families.files import (
    MissingBenchmarkFile,
    normalise_xyxy,
    read_json,
    require_images,
    select_subset,
    xywh_to_xyxy,
)
from vlm_sweeps.eval.registry import Benchmark, LoadContext, register

COCO_TRAIN_IMAGES = "coco/train2014"
# benchmark -> (folder, REFER splitBy)
REFCOCO_SPLITS: dict[str, tuple[str, str]] = {
    "refcoco": ("refcoco", "unc"),
    "refcoco+": ("refcoco+", "unc"),
    "refcocog": ("refcocog", "umd"),
}
OCID_PATHS = {"expressions": "ocid_ref/val_expressions.json", "images": "ocid_ref/OCID-dataset"}
REFCOCO_HINT = (
    "Download {folder}.zip from https://bvisionweb1.cs.unc.edu/licheng/referit/data/ (refs({split}).p, "
    "instances.json) into <root>/{folder}/ and convert the pickle to refs({split}).json once, with a Python you "
    "trust it in: python -c \"import json,pickle; json.dump(pickle.load(open('refs({split}).p','rb')), "
    "open('refs({split}).json','w'))\"; or put MDETR's finetune_{folder}_val.json (mdetr_annotations.tar.gz) "
    "there instead. Images: COCO train2014 in <root>/coco/train2014/."
)
OCID_HINT = (
    "Download val_expressions.json from the OCID-Ref repository (github.com/lluma/OCID-Ref) into <root>/ocid_ref/ "
    "and the OCID dataset (https://www.acin.tuwien.ac.at/en/vision-for-robotics/software-tools/"
    "object-clutter-indoor-dataset/) into <root>/ocid_ref/OCID-dataset/."
)
# OCID `take_id` (0..20) grows with clutter on the table: free, touching, stacked objects.
OCID_CLUTTER = ("min_clutter", "medium_clutter", "max_clutter")


# --- RefCOCO / RefCOCO+ / RefCOCOg --------------------------------------------------------


def load_refcoco(ctx: LoadContext, *, benchmark: str) -> list[EvalExample]:
    """The val split of one RefCOCO dataset, one example per referring sentence."""
    folder, split_by = REFCOCO_SPLITS[benchmark]
    base = Path(ctx.root) / folder
    hint = REFCOCO_HINT.format(folder=folder, split=split_by)
    refer_json, mdetr_json = base / f"refs({split_by}).json", base / f"finetune_{folder}_val.json"
    if refer_json.exists():
        records = _refer_records(benchmark, refer_json, base / "instances.json", hint)
    elif mdetr_json.exists():
        records = _mdetr_records(benchmark, mdetr_json, hint)
    elif (base / f"refs({split_by}).p").exists():
        raise MissingBenchmarkFile(
            benchmark, refer_json, f"Found refs({split_by}).p, but pickles are not loaded (they can run code). " + hint
        )
    else:
        raise MissingBenchmarkFile(benchmark, refer_json, hint)
    images = Path(ctx.root) / COCO_TRAIN_IMAGES
    examples = [
        EvalExample(
            qid=r["qid"],
            question=prompts.refer(r["sentence"]),
            image=str(images / f"COCO_train2014_{int(r['image_id']):012d}.jpg"),
            box=normalise_xyxy(xywh_to_xyxy(r["bbox"]), r["width"], r["height"]),
            meta={"width": r["width"], "height": r["height"], "expression": r["sentence"]},
        )
        for r in select_subset(records, ctx.max_examples, ctx.seed)
    ]
    require_images(benchmark, [ex.image for ex in examples], hint)
    return examples


def _refer_records(benchmark: str, refs_path: Path, instances_path: Path, hint: str) -> list[dict[str, Any]]:
    """REFER layout: refs (list of {ref_id, ann_id, image_id, split, sentences}) + COCO instances."""
    refs = read_json(benchmark, refs_path, hint)
    instances = read_json(benchmark, instances_path, hint)
    images = {img["id"]: img for img in instances["images"]}
    boxes = {ann["id"]: ann["bbox"] for ann in instances["annotations"]}
    records = []
    for ref in refs:
        if ref["split"] != "val":
            continue
        image = images[ref["image_id"]]
        for sent in ref["sentences"]:
            records.append(
                {
                    "qid": f"{ref['ref_id']}_{sent['sent_id']}",
                    "sentence": sent["sent"],
                    "image_id": ref["image_id"],
                    "bbox": boxes[ref["ann_id"]],
                    "width": image["width"],
                    "height": image["height"],
                }
            )
    return records


def _mdetr_records(benchmark: str, path: Path, hint: str) -> list[dict[str, Any]]:
    """MDETR layout: COCO-style json whose `images` are (image, expression) pairs, one box each."""
    data = read_json(benchmark, path, hint)
    boxes = {ann["image_id"]: ann["bbox"] for ann in data["annotations"]}
    return [
        {
            "qid": str(img["id"]),
            "sentence": img["caption"],
            "image_id": img["original_id"],
            "bbox": boxes[img["id"]],
            "width": img["width"],
            "height": img["height"],
        }
        for img in data["images"]
    ]


# --- OCID-Ref -------------------------------------------------------------------------------


def load_ocid_ref(ctx: LoadContext) -> list[EvalExample]:
    """OCID-Ref val: `{id: {scene_path, sentence, bbox: "[x1, y1, x2, y2]" (pixels), take_id}}`;
    the image size is read from each selected image's header."""
    from PIL import Image  # only here: the other loaders need no imaging library

    path = Path(ctx.root) / OCID_PATHS["expressions"]
    expressions: dict[str, dict[str, Any]] = read_json("ocid_ref", path, OCID_HINT)
    images = Path(ctx.root) / OCID_PATHS["images"]
    selected = select_subset(list(expressions.items()), ctx.max_examples, ctx.seed)
    require_images("ocid_ref", [str(images / e["scene_path"]) for _, e in selected], OCID_HINT)
    examples = []
    for key, e in selected:
        path = images / e["scene_path"]
        with Image.open(path) as img:
            width, height = img.size
        bbox = _pixel_box(e["bbox"])
        examples.append(
            EvalExample(
                qid=str(key),
                question=prompts.refer(e["sentence"]),
                image=str(path),
                box=normalise_xyxy(bbox, width, height),
                meta={"width": width, "height": height, "clutter": _clutter(int(e.get("take_id", 0)))},
            )
        )
    return examples


def _pixel_box(raw: str | Sequence[float]) -> list[float]:
    """OCID-Ref stores boxes as a JSON string "[x1, y1, x2, y2]"; accept a list too."""
    values = [float(v) for v in raw.strip("[] ").split(",")] if isinstance(raw, str) else [float(v) for v in raw]
    if len(values) != 4:
        raise ValueError(f"ocid_ref: a box needs 4 numbers [x1, y1, x2, y2], got {raw!r}")
    return values


def _clutter(take_id: int) -> str:
    return OCID_CLUTTER[bisect_left([9, 16, 20], take_id)]


# --- scorers -----------------------------------------------------------------------------------


def score_refer(
    examples: Sequence[EvalExample], predictions: Sequence[str], *, threshold: float, metric: str
) -> dict[str, float]:
    """Accuracy at IoU >= threshold (`metric`), the share of unparsable answers, and the accuracy per
    OCID clutter level when the examples carry one."""
    scoring.check_lengths(predictions, examples)
    boxes = [ex.box for ex in examples]
    if any(b is None for b in boxes):
        raise ValueError("score_refer needs examples with a target `box`; load them with a refer loader")
    metrics = {
        metric: scoring.refer_accuracy(predictions, boxes, threshold),
        "unparsable": sum(scoring.parse_box(p) is None for p in predictions) / max(1, len(predictions)),
    }
    for level in OCID_CLUTTER:
        idx = [i for i, ex in enumerate(examples) if ex.meta.get("clutter") == level]
        if idx:
            metrics[f"{metric}_{level}"] = scoring.refer_accuracy(
                [predictions[i] for i in idx], [boxes[i] for i in idx], threshold
            )
    return metrics


_score_iou50 = partial(score_refer, threshold=0.5, metric="acc_iou50")
_score_iou25 = partial(score_refer, threshold=0.25, metric="acc_iou25")
# Box strings are ~25 tokens with digit-split tokenizers; 40 leaves room for a short preamble.
REFER_MAX_NEW_TOKENS = 40

REFCOCO = register(Benchmark("refcoco", partial(load_refcoco, benchmark="refcoco"), _score_iou50, REFER_MAX_NEW_TOKENS))
REFCOCO_PLUS = register(
    Benchmark("refcoco+", partial(load_refcoco, benchmark="refcoco+"), _score_iou50, REFER_MAX_NEW_TOKENS)
)
REFCOCOG = register(
    Benchmark("refcocog", partial(load_refcoco, benchmark="refcocog"), _score_iou50, REFER_MAX_NEW_TOKENS)
)
OCID_REF = register(Benchmark("ocid_ref", load_ocid_ref, _score_iou25, REFER_MAX_NEW_TOKENS))
