"""Referring-expression benchmarks: RefCOCO, RefCOCO+, RefCOCOg (val) and OCID-Ref (val).

The model generates a box; the paper's scorer (vlm-evaluation `harnesses/refcoco.py` and
`ocidref.py`: `parse_bbox`, `compute_iou`) accepts only an answer that is exactly a list literal of
four normalised numbers `[x1, y1, x2, y2]` (`scoring.parse_box_literal`); accuracy is the share with
IoU >= 0.5 (RefCOCO*) or >= 0.25 (OCID-Ref). The gold box is normalised by the image size and
rounded to 2 decimals, as vlm-evaluation's `box_xywh2xyxy` / `box_xyxy2normalized` store it.
`lenient_<metric>` reads boxes anywhere in the text (`scoring.parse_box`), under its own name.

Expected files under the data root, as downloaded:

| benchmark | files (first form found wins) |
|---|---|
| refcoco | refcoco/refs(unc).p + refcoco/instances.json (refcoco.zip of the REFER release), or refs(unc).json (the pickle converted), or refcoco/finetune_refcoco_val.json (MDETR) |
| refcoco+ | refcoco+/refs(unc).p + refcoco+/instances.json, or refs(unc).json, or refcoco+/finetune_refcoco+_val.json |
| refcocog | refcocog/refs(umd).p + refcocog/instances.json, or refs(umd).json, or refcocog/finetune_refcocog_val.json |
| all three | coco/train2014/COCO_train2014_<image_id:012d>.jpg (cocodataset.org train2014.zip) |
| ocid_ref | ocid_ref/val_expressions.json (OCID-Ref) + ocid_ref/OCID-dataset/<scene_path> (OCID) |

The REFER pickles are read through a restricted unpickler that builds plain containers and numbers
only (`files.read_plain_pickle`): a pickle naming any class is refused, nothing in it runs.

Slim subsets are vlm-evaluation's (`build_refcoco_indices`): one shuffle over the val sentences of
RefCOCO, RefCOCO+ and RefCOCOg together (in that order), then the first N of each dataset. Loading
one dataset's slim set therefore needs the other two's sentence counts: read from their files when
present, else the released counts (`REFER_VAL_SENTENCES`). The MDETR form lists sentences in another
order than REFER, so its slim set is not vlm-evaluation's (a warning says so).

OCID-Ref's boxes: its `instruction.txt` documents `bbox` as "(x, y, w, h)", but the released
`val_expressions.json` holds corner pairs `[x1, y1, x2, y2]` in pixels of the 640 x 480 OCID images:
vlm-evaluation reads them so (`box_xyxy2normalized`, asserting x1 < x2 <= 640 and y1 < y2 <= 480
on all 18,342 val boxes, which widths and heights would break wherever an object is narrower than
its x offset). This loader reads corner pairs, divides by 640 x 480 as vlm-evaluation does (every
OCID image has that size), and refuses a box that breaks those bounds.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from vlm_sweeps.eval import scoring
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.eval.families import prompts
from vlm_sweeps.eval.families.files import (
    MissingBenchmarkFile,
    read_json,
    read_plain_pickle,
    require_images,
    select_subset,
    slim_order,
    xywh_to_xyxy,
)
from vlm_sweeps.eval.registry import Benchmark, LoadContext, register

log = logging.getLogger(__name__)

COCO_TRAIN_IMAGES = "coco/train2014"
# benchmark -> (folder, REFER splitBy), in vlm-evaluation's order (its slim shuffle spans all three)
REFCOCO_SPLITS: dict[str, tuple[str, str]] = {
    "refcoco": ("refcoco", "unc"),
    "refcoco+": ("refcoco+", "unc"),
    "refcocog": ("refcocog", "umd"),
}
# Sentences of the val refs in the released REFER files (vlm-evaluation: 26,488 in all).
REFER_VAL_SENTENCES: dict[str, int] = {"refcoco": 10834, "refcoco+": 10758, "refcocog": 4896}
OCID_PATHS = {"expressions": "ocid_ref/val_expressions.json", "images": "ocid_ref/OCID-dataset"}
OCID_IMAGE_SIZE = (640, 480)  # vlm-evaluation: "All OCID Images are 640 x 480 Pixels!"
REFCOCO_HINT = (
    "Download {folder}.zip from https://bvisionweb1.cs.unc.edu/licheng/referit/data/ and unpack refs({split}).p "
    "and instances.json into <root>/{folder}/ (or put MDETR's finetune_{folder}_val.json from "
    "mdetr_annotations.tar.gz there). Images: COCO train2014 in <root>/coco/train2014/."
)
OCID_HINT = (
    "Download val_expressions.json from the OCID-Ref repository (github.com/lluma/OCID-Ref) into <root>/ocid_ref/ "
    "and the OCID dataset (https://www.acin.tuwien.ac.at/en/vision-for-robotics/software-tools/"
    "object-clutter-indoor-dataset/) into <root>/ocid_ref/OCID-dataset/."
)
# OCID `take_id` (0..20) grows with clutter on the table: free (0-9), touching (10-16), stacked (17-20).
OCID_CLUTTER = ("min_clutter", "medium_clutter", "max_clutter")


# --- RefCOCO / RefCOCO+ / RefCOCOg --------------------------------------------------------


def load_refcoco(ctx: LoadContext, *, benchmark: str) -> list[EvalExample]:
    """The val split of one RefCOCO dataset, one example per referring sentence, in file order."""
    records = _refcoco_records(Path(ctx.root), benchmark)
    order = _joint_slim_order(Path(ctx.root), benchmark, len(records)) if ctx.max_examples is not None else None
    images = Path(ctx.root) / COCO_TRAIN_IMAGES
    examples = [
        EvalExample(
            qid=r["qid"],
            question=prompts.refer(r["sentence"]),
            image=str(images / f"COCO_train2014_{int(r['image_id']):012d}.jpg"),
            box=_normalised_box(benchmark, r["qid"], xywh_to_xyxy(r["bbox"]), r["width"], r["height"]),
            meta={"width": r["width"], "height": r["height"], "expression": r["sentence"]},
        )
        for r in select_subset(records, ctx.max_examples, order=order)
    ]
    folder, split_by = REFCOCO_SPLITS[benchmark]
    require_images(benchmark, [ex.image for ex in examples], REFCOCO_HINT.format(folder=folder, split=split_by))
    return examples


def _refcoco_sources(root: Path, benchmark: str) -> tuple[str, Path]:
    """Which released form of `benchmark` is under `root`: ("pickle" | "json" | "mdetr", path)."""
    folder, split_by = REFCOCO_SPLITS[benchmark]
    base = root / folder
    for kind, path in (("pickle", base / f"refs({split_by}).p"), ("json", base / f"refs({split_by}).json"),
                       ("mdetr", base / f"finetune_{folder}_val.json")):
        if path.exists():
            return kind, path
    hint = REFCOCO_HINT.format(folder=folder, split=split_by)
    raise MissingBenchmarkFile(benchmark, base / f"refs({split_by}).p", hint)


def _refcoco_refs(root: Path, benchmark: str) -> tuple[str, Any]:
    kind, path = _refcoco_sources(root, benchmark)
    folder, split_by = REFCOCO_SPLITS[benchmark]
    hint = REFCOCO_HINT.format(folder=folder, split=split_by)
    data = read_plain_pickle(benchmark, path, hint) if kind == "pickle" else read_json(benchmark, path, hint)
    return kind, data


def _refcoco_records(root: Path, benchmark: str) -> list[dict[str, Any]]:
    kind, data = _refcoco_refs(root, benchmark)
    folder, split_by = REFCOCO_SPLITS[benchmark]
    hint = REFCOCO_HINT.format(folder=folder, split=split_by)
    if kind == "mdetr":
        return _mdetr_records(data)
    return _refer_records(benchmark, data, root / folder / "instances.json", hint)


def _val_sentences(root: Path, benchmark: str) -> int:
    """How many val sentences `benchmark` has: from its files if present, else the released count."""
    try:
        kind, data = _refcoco_refs(root, benchmark)
    except MissingBenchmarkFile:
        return REFER_VAL_SENTENCES[benchmark]
    if kind == "mdetr":
        return len(data["images"])
    return sum(len(ref["sentences"]) for ref in data if ref["split"] == "val")


def _joint_slim_order(root: Path, benchmark: str, n_own: int) -> list[int]:
    """This dataset's positions in vlm-evaluation's shuffle of RefCOCO + RefCOCO+ + RefCOCOg val."""
    if _refcoco_sources(root, benchmark)[0] == "mdetr":
        log.warning("%s: MDETR's file lists sentences in another order than REFER's refs pickle, so this slim "
                    "subset is not vlm-evaluation's; put refs(*).p and instances.json there for that", benchmark)
    sizes = [n_own if name == benchmark else _val_sentences(root, name) for name in REFCOCO_SPLITS]
    offset = sum(sizes[: list(REFCOCO_SPLITS).index(benchmark)])
    return [p - offset for p in slim_order(sum(sizes)) if offset <= p < offset + n_own]


def _refer_records(benchmark: str, refs: list[dict[str, Any]], instances_path: Path, hint: str) -> list[dict[str, Any]]:
    """REFER layout (vlm-evaluation `util/loading/refer.py` + `build_refcoco_indices`): the refs whose
    `split` is "val", in file order, each sentence in order, with the box of its COCO annotation."""
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


def _mdetr_records(data: dict[str, Any]) -> list[dict[str, Any]]:
    """MDETR layout: COCO-style json whose `images` are (image, expression) pairs, one box each."""
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


def _normalised_box(benchmark: str, qid: str, xyxy: Sequence[float], width: float, height: float) -> scoring.Box:
    """Pixel corners -> fractions of the image size, rounded to 2 decimals (vlm-evaluation's
    `box_xywh2xyxy(..., do_normalize=True)` / `box_xyxy2normalized`, including their bounds check)."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    if not (x1 < x2 <= width and y1 < y2 <= height):
        raise ValueError(
            f"{benchmark}: example {qid} has box {[x1, y1, x2, y2]} (x1, y1, x2, y2 pixels), outside its "
            f"{width} x {height} image or empty; the file is not the released one"
        )
    return scoring.round_box((x1 / width, y1 / height, x2 / width, y2 / height))


# --- OCID-Ref -------------------------------------------------------------------------------


def load_ocid_ref(ctx: LoadContext) -> list[EvalExample]:
    """OCID-Ref val: `{id: {scene_path, sentence, bbox: "[x1, y1, x2, y2]" (pixels), take_id, ...}}`,
    in file order; the slim subset takes N examples per clutter level (vlm-evaluation's
    `build_ocidref_indices`)."""
    path = Path(ctx.root) / OCID_PATHS["expressions"]
    expressions: dict[str, dict[str, Any]] = read_json("ocid_ref", path, OCID_HINT)
    images = Path(ctx.root) / OCID_PATHS["images"]
    records = [(str(key), e, _clutter(key, e["take_id"])) for key, e in expressions.items()]
    selected = select_subset(records, ctx.max_examples, group=lambda r: r[2])
    require_images("ocid_ref", [str(images / e["scene_path"]) for _, e, _ in selected], OCID_HINT)
    width, height = OCID_IMAGE_SIZE
    return [
        EvalExample(
            qid=key,
            question=prompts.refer(e["sentence"]),
            image=str(images / e["scene_path"]),
            box=_normalised_box("ocid_ref", key, _pixel_box(e["bbox"]), width, height),
            meta={"width": width, "height": height, "clutter": clutter},
        )
        for key, e, clutter in selected
    ]


def _pixel_box(raw: str | Sequence[float]) -> list[float]:
    """OCID-Ref stores each box as a JSON string "[x1, y1, x2, y2]" (vlm-evaluation: `json.loads`)."""
    values = json.loads(raw) if isinstance(raw, str) else list(raw)
    if len(values) != 4:
        raise ValueError(f"ocid_ref: a box needs 4 numbers [x1, y1, x2, y2], got {raw!r}")
    return [float(v) for v in values]


def _clutter(key: str, take_id: Any) -> str:
    """vlm-evaluation's `get_split`: take 0-9 minimum, 10-16 medium, 17-20 maximum clutter."""
    take = int(take_id)
    if not 0 <= take <= 20:
        raise ValueError(f"ocid_ref: example {key} has take_id {take_id}; OCID takes are 0..20")
    return OCID_CLUTTER[bisect_left([9, 16, 20], take)]


# --- scorers -----------------------------------------------------------------------------------


def score_refer(
    examples: Sequence[EvalExample], predictions: Sequence[str], *, threshold: float, metric: str
) -> dict[str, float]:
    """vlm-evaluation's `RefCOCOScorer.score` / `OCIDRefScorer.score`: accuracy at IoU >= threshold
    (`metric`; invalid answers count as wrong), the share of invalid answers (`unparsable`), the
    accuracy per OCID clutter level when the examples carry one (`<metric>_min_clutter`, ...; the
    pooled `metric` is OCIDRef-All), and `lenient_<metric>`, the same accuracy with boxes read
    anywhere in the text (not the paper's rule)."""
    scoring.check_lengths(predictions, examples)
    boxes = [ex.box for ex in examples]
    if any(b is None for b in boxes):
        raise ValueError("score_refer needs examples with a target `box`; load them with a refer loader")
    metrics = {
        metric: scoring.refer_accuracy(predictions, boxes, threshold),
        "unparsable": sum(scoring.parse_box_literal(p) is None for p in predictions) / max(1, len(predictions)),
        f"lenient_{metric}": scoring.refer_accuracy(predictions, boxes, threshold, lenient=True),
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
_BUDGET = prompts.MAX_NEW_TOKENS

REFCOCO = register(Benchmark("refcoco", partial(load_refcoco, benchmark="refcoco"), _score_iou50, _BUDGET))
REFCOCO_PLUS = register(Benchmark("refcoco+", partial(load_refcoco, benchmark="refcoco+"), _score_iou50, _BUDGET))
REFCOCOG = register(Benchmark("refcocog", partial(load_refcoco, benchmark="refcocog"), _score_iou50, _BUDGET))
OCID_REF = register(Benchmark("ocid_ref", load_ocid_ref, _score_iou25, _BUDGET))
