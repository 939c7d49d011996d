"""Tiny copies of the paper's benchmark files, each in its released format and layout.

`paper_root` writes all twelve benchmarks under one data root (with small images made by PIL)
so loader and scorer tests read exactly what a user's downloads would contain: JSON, JSON lines,
REFER's `refs(*).p` pickles (protocol 2, as Python 2 wrote them), CSV.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def _image(path: Path, size: tuple[int, int] = (8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path)  # format from the suffix: .jpg or .png


def _json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _vqa_answers(answers: list[str]) -> list[dict[str, Any]]:
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]


def write_vqav2(root: Path) -> None:
    questions = [
        {"image_id": 42, "question": "How many dogs are there?", "question_id": 420},
        {"image_id": 42, "question": "Is it sunny?", "question_id": 421},
        {"image_id": 7, "question": "What color is the car?", "question_id": 70},
        {"image_id": 7, "question": "What does the sign say?", "question_id": 71},
    ]
    annotations = [
        {"question_id": 420, "image_id": 42, "question_type": "how many", "answer_type": "number",
         "multiple_choice_answer": "2", "answers": _vqa_answers(["2"] * 9 + ["3"])},
        {"question_id": 421, "image_id": 42, "question_type": "is it", "answer_type": "yes/no",
         "multiple_choice_answer": "yes", "answers": _vqa_answers(["yes"] * 10)},
        {"question_id": 70, "image_id": 7, "question_type": "what color is the", "answer_type": "other",
         "multiple_choice_answer": "blue", "answers": _vqa_answers(["red"] * 2 + ["blue"] * 8)},
        {"question_id": 71, "image_id": 7, "question_type": "what does the", "answer_type": "other",
         "multiple_choice_answer": "don't know", "answers": _vqa_answers(["don't know"] * 10)},
    ]  # fmt: skip
    _json(root / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
          {"task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "questions": questions})
    _json(root / "vqav2/v2_mscoco_val2014_annotations.json", {"data_subtype": "val2014", "annotations": annotations})
    for image_id in (42, 7):
        _image(root / f"coco/val2014/COCO_val2014_{image_id:012d}.jpg")


def write_gqa(root: Path, *, edge_cases: bool = False) -> None:
    """GQA testdev-balanced; `edge_cases` adds an answer with punctuation, which the reference rule
    (punctuation stripped from the prediction only) can never match."""
    questions = {
        "20968379": {"imageId": "n288870", "question": "Is the bowl to the left or right of the cup?",
                     "answer": "left", "fullAnswer": "The bowl is to the left of the cup.", "isBalanced": True},
        "20968380": {"imageId": "n288870", "question": "Is there a cat?", "answer": "no",
                     "fullAnswer": "No, there is no cat.", "isBalanced": True},
    }  # fmt: skip
    if edge_cases:
        questions["20968381"] = {"imageId": "n288870", "question": "What is the man wearing?", "answer": "t-shirt",
                                 "fullAnswer": "The man is wearing a t-shirt.", "isBalanced": True}
    _json(root / "gqa/testdev_balanced_questions.json", questions)
    _image(root / "gqa/images/n288870.jpg")


def write_vizwiz(root: Path, *, edge_cases: bool = False) -> None:
    """VizWiz val; the last question is answerable by its flag though most annotators said
    "unanswerable"; `edge_cases` writes those answers capitalised, as typed (compared raw)."""
    def entry(i: int, question: str, answers: list[str], answerable: int, answer_type: str) -> dict[str, Any]:
        return {"image": f"VizWiz_val_{i:08d}.jpg", "question": question, "answerable": answerable,
                "answer_type": answer_type, "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers]}

    records = [
        entry(0, "What is this?", ["soup"] * 2 + ["tomato soup"] * 8, 1, "other"),
        entry(1, "What color is this shirt?", ["unanswerable"] * 10, 0, "unanswerable"),
        entry(2, "Is the light on?", ["yes"] * 10, 1, "yes/no"),
        entry(3, "What brand is this?", ["dont know"] * 4 + ["Unanswerable" if edge_cases else "unanswerable"] * 6,
              1, "other"),
    ]
    _json(root / "vizwiz/val.json", records)
    for i in range(len(records)):
        _image(root / f"vizwiz/val/VizWiz_val_{i:08d}.jpg")


def write_textvqa(root: Path, *, llava_questions: bool = True, inline_ocr: bool = True) -> None:
    """TextVQA_0.5.1_val.json (which carries `ocr_tokens`) and, as vlm-evaluation downloads it, LLaVA's
    `textvqa_val_v051_ocr.jsonl` (the question, then "Reference OCR token: ..." when there are tokens)."""
    data = [
        {"question_id": 34602, "image_id": "003a8ae2ef43b901", "question": "what is the brand of this camera?",
         "answers": ["nous les gosses"] * 3 + ["dakota"] * 7, "ocr_tokens": ["DAKOTA", "DIGITAL"]},
        {"question_id": 34603, "image_id": "003a8ae2ef43b902", "question": "what does the sign say?",
         "answers": ["stop"] * 10, "ocr_tokens": ["STOP"]},
        {"question_id": 34604, "image_id": "003a8ae2ef43b903", "question": "whose bottle is this?",
         "answers": ["Coca-Cola's"] * 2 + ["coca cola"] * 8, "ocr_tokens": []},
    ]  # fmt: skip
    lines = [
        {"question_id": "003a8ae2ef43b901", "image": "003a8ae2ef43b901.jpg",
         "text": "what is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL"},
        {"question_id": "003a8ae2ef43b902", "image": "003a8ae2ef43b902.jpg",
         "text": "what does the sign say?\nReference OCR token: STOP, AHEAD"},
        {"question_id": "003a8ae2ef43b903", "image": "003a8ae2ef43b903.jpg", "text": "whose bottle is this?"},
    ]  # fmt: skip
    if llava_questions:
        _jsonl(root / "textvqa/textvqa_val_v051_ocr.jsonl", lines)
    if not inline_ocr:
        for d in data:
            del d["ocr_tokens"]
        _json(root / "textvqa/TextVQA_Rosetta_OCR_v0.2_val.json",
              {"data": [{"image_id": "003a8ae2ef43b901", "ocr_tokens": ["KODAK"]}]})
    _json(root / "textvqa/TextVQA_0.5.1_val.json", {"dataset_name": "textvqa", "dataset_type": "val", "data": data})
    for d in data:
        _image(root / f"textvqa/train_images/{d['image_id']}.jpg")


def _coco_instances() -> dict[str, Any]:
    # image 10 is 200 x 100 pixels: box [20, 10, 80, 40] (x, y, w, h) is [0.1, 0.1, 0.5, 0.5] normalised;
    # image 12 is 1000 x 1000: box [4, 4, 10, 10] is [0.004, 0.004, 0.014, 0.014], stored rounded [0, 0, 0.01, 0.01]
    return {
        "images": [{"id": 10, "width": 200, "height": 100, "file_name": "COCO_train2014_000000000010.jpg"},
                   {"id": 11, "width": 100, "height": 100, "file_name": "COCO_train2014_000000000011.jpg"},
                   {"id": 12, "width": 1000, "height": 1000, "file_name": "COCO_train2014_000000000012.jpg"}],
        "annotations": [{"id": 100, "image_id": 10, "bbox": [20, 10, 80, 40], "category_id": 18},
                        {"id": 101, "image_id": 11, "bbox": [0, 0, 50, 50], "category_id": 1},
                        {"id": 102, "image_id": 12, "bbox": [4, 4, 10, 10], "category_id": 1}],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }  # fmt: skip


def _refs() -> list[dict[str, Any]]:
    return [
        {"ref_id": 1, "ann_id": 100, "image_id": 10, "split": "val", "category_id": 18,
         "file_name": "COCO_train2014_000000000010_100.jpg",
         "sentences": [{"sent": "dog on the left", "sent_id": 5, "raw": "Dog on the left", "tokens": []},
                       {"sent": "brown dog", "sent_id": 6, "raw": "brown dog", "tokens": []}]},
        {"ref_id": 2, "ann_id": 101, "image_id": 11, "split": "train", "category_id": 1,
         "file_name": "COCO_train2014_000000000011_101.jpg",
         "sentences": [{"sent": "man in red", "sent_id": 7, "raw": "man in red", "tokens": []}]},
        {"ref_id": 3, "ann_id": 102, "image_id": 12, "split": "val", "category_id": 1,
         "file_name": "COCO_train2014_000000000012_102.jpg",
         "sentences": [{"sent": "tiny man far away", "sent_id": 8, "raw": "Tiny man far away", "tokens": []}]},
    ]  # fmt: skip


def write_refcoco(root: Path) -> None:
    """RefCOCO, RefCOCO+ and RefCOCOg as the REFER archives unpack: `refs(unc).p` / `refs(umd).p`
    (a protocol-2 pickle of plain lists and dicts, what Python 2's cPickle wrote) + `instances.json`."""
    for folder, split_by in (("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "umd")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / f"{folder}/refs({split_by}).p").write_bytes(pickle.dumps(_refs(), protocol=2))
        _json(root / f"{folder}/instances.json", _coco_instances())
    for image_id in (10, 11, 12):
        _image(root / f"coco/train2014/COCO_train2014_{image_id:012d}.jpg")


def write_refcoco_plus_mdetr(root: Path) -> None:
    """RefCOCO+ in MDETR's `finetune_refcoco+_val.json` layout: one `images` entry per expression."""
    images = [
        {"id": 0, "file_name": "COCO_train2014_000000000010.jpg", "height": 100, "width": 200, "original_id": 10,
         "caption": "dog on the left", "dataset_name": "refcoco+", "tokens_negative": []},
    ]  # fmt: skip
    annotations = [{"id": 0, "image_id": 0, "bbox": [20, 10, 80, 40], "area": 3200, "iscrowd": 0, "category_id": 18}]
    _json(root / "refcoco+/finetune_refcoco+_val.json",
          {"images": images, "annotations": annotations, "categories": [{"id": 18, "name": "dog"}]})
    _image(root / "coco/train2014/COCO_train2014_000000000010.jpg")


def write_ocid_ref(root: Path) -> None:
    """val_expressions.json as released: `bbox` a JSON string of pixel corners [x1, y1, x2, y2] on the
    640 x 480 OCID images (the other keys as `instruction.txt` lists them)."""
    def entry(take_id: int, stamp: str, sentence: str, bbox: str, cls: str) -> dict[str, Any]:
        return {"seq_id": 8, "scene_id": 100 + take_id, "take_id": take_id,
                "scene_path": f"ARID20/table/top/seq08/rgb/result_2018-08-21-{stamp}.png",
                "sequence_path": "ARID20/table/top/seq08", "sub_dataset": "ARID20", "instance_id": 7,
                "scene_instance": 1, "class": cls, "class_instance": f"{cls}_1", "new_class": cls,
                "sentence": sentence, "tokens": sentence.split(), "bbox": bbox, "sentence_type": "spatial"}

    expressions = {
        "0": entry(3, "15-53-47", "the red bowl", "[160, 120, 320, 240]", "bowl"),
        "1": entry(18, "15-54-10", "the apple behind the cereal box", "[0, 0, 320, 480]", "apple"),
        "2": entry(12, "15-54-01", "the mug left of the box", "[80, 48, 400, 240]", "mug"),
    }  # fmt: skip
    _json(root / "ocid_ref/val_expressions.json", expressions)
    for e in expressions.values():
        _image(root / "ocid_ref/OCID-dataset" / e["scene_path"], size=(640, 480))


def write_vsr(root: Path) -> None:
    rows = [
        {"image": "000000085637.jpg", "image_link": "http://images.cocodataset.org/train2017/000000085637.jpg",
         "caption": "The dog is on the bed.", "label": 1, "relation": "on"},
        {"image": "000000085638.jpg", "image_link": "http://images.cocodataset.org/val2017/000000085638.jpg",
         "caption": "The cat is under the table.", "label": 0, "relation": "under"},
    ]  # fmt: skip
    _jsonl(root / "vsr/test.jsonl", rows)
    for r in rows:
        _image(root / "vsr/images" / r["image"])


def write_tallyqa(root: Path) -> None:
    rows = [
        {"image": "VG_100K_2/2410408.jpg", "question": "How many zebras are there?", "answer": 2,
         "issimple": True, "question_id": 30000001, "image_id": 2410408, "data_source": "imported_genome"},
        {"image": "val2014/COCO_val2014_000000000042.jpg", "question": "How many dogs are sitting?", "answer": 0,
         "issimple": False, "question_id": 30000002, "image_id": 42, "data_source": "amt"},
        {"image": "VG_100K/1.jpg", "question": "How many birds are flying?", "answer": 11,
         "issimple": False, "question_id": 30000003, "image_id": 1, "data_source": "amt"},
        {"image": "VG_100K/2.jpg", "question": "How many cats are there?", "answer": 1,
         "issimple": True, "question_id": 30000004, "image_id": 2, "data_source": "imported_genome"},
    ]  # fmt: skip
    _json(root / "tallyqa/test.json", rows)
    for r in rows:
        _image(root / "tallyqa" / r["image"])


def write_pope(root: Path) -> None:
    images = ["COCO_val2014_000000310196.jpg", "COCO_val2014_000000210789.jpg"]
    for split in ("adversarial", "popular", "random"):
        rows = [
            {"question_id": 1, "image": images[0], "text": "Is there a snowboard in the image?", "label": "yes"},
            {"question_id": 2, "image": images[1], "text": f"Is there a {split} chair in the image?", "label": "no"},
        ]
        _jsonl(root / f"pope/coco_pope_{split}.json", rows)
    for name in images:
        _image(root / "coco/val2014" / name)


def write_ai2d(root: Path) -> None:
    def diagram(n: int, questions: dict[str, Any]) -> None:
        _json(root / f"ai2d/questions/{n}.png.json", {"imageName": f"{n}.png", "questions": questions})
        _image(root / f"ai2d/images/{n}.png")

    diagram(1, {
        "Which stage comes after the egg?": {"abcLabel": False, "answerTexts": ["adult", "larva", "pupa", "egg"],
                                              "correctAnswer": 1, "questionId": "1.png-0"},
        "What does label A show?": {"abcLabel": True, "answerTexts": ["sun", "moon", "earth", "star"],
                                     "correctAnswer": 2, "questionId": "1.png-1"},
    })  # fmt: skip
    diagram(10, {
        "Which is a producer?": {"abcLabel": False, "answerTexts": ["grass", "fox", "owl", "hawk"],
                                 "correctAnswer": 0, "questionId": "10.png-0"},
    })  # fmt: skip
    diagram(2, {
        "Which organism is a consumer?": {"abcLabel": False, "answerTexts": ["tree", "deer", "algae", "moss"],
                                          "correctAnswer": 1, "questionId": "2.png-0"},
        "Which organism is a producer?": {"abcLabel": False, "answerTexts": ["tree", "deer", "fox", "owl"],
                                          "correctAnswer": 0, "questionId": "2.png-1"},
    })  # fmt: skip
    # diagram 2 is not listed in ai2d_test_ids.csv: a val diagram; 1 and 10 are test diagrams
    (root / "ai2d/ai2d_test_ids.csv").write_text("1\n10\n", encoding="utf-8")


WRITERS = (
    write_vqav2, write_gqa, write_vizwiz, write_textvqa, write_refcoco, write_ocid_ref, write_vsr,
    write_tallyqa, write_pope, write_ai2d,
)  # fmt: skip


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding all twelve benchmarks in their real formats."""
    root = tmp_path_factory.mktemp("paper_data")
    for write in WRITERS:
        write(root)
    return root


@pytest.fixture
def writers() -> dict[str, Any]:
    """The fixture writers by name, for tests that need one benchmark in a fresh root."""
    return {w.__name__.removeprefix("write_"): w for w in (*WRITERS, write_refcoco_plus_mdetr)}
