"""Slim subsets select the examples vlm-evaluation's slim sets hold.

`reference_slim` transcribes what every `build_*_indices(root_dir, slim_dataset_sizes, seed=21)` of
vlm-evaluation (`vlm_eval/tasks/harnesses/*.py`) does: index the file's examples in order, shuffle
the ids once with `Random(seed)`, then keep `all_qids[:n_slim]`, or, for the datasets with splits,
walk the shuffled ids keeping the first `n_slim` of each split until every split has them. Each
test writes a benchmark file in its released schema, larger than the shared fixtures, and compares
the loader's slim subset with that procedure.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from random import Random
from typing import Any, Sequence

from PIL import Image

from vlm_sweeps.eval import registry
from vlm_sweeps.eval.families.refer import REFER_VAL_SENTENCES
from vlm_sweeps.eval.registry import LoadContext


def reference_slim(ids: Sequence[Any], n_slim: int, split_of: dict[Any, str] | None = None, seed: int = 21) -> set:
    all_qids = list(ids)
    Random(seed).shuffle(all_qids)
    if split_of is None:
        return set(all_qids[:n_slim])
    slim_qids, counts = [], {split: 0 for split in dict.fromkeys(split_of.values())}
    for qid in all_qids:
        split = split_of[qid]
        if counts[split] < n_slim:
            slim_qids.append(qid)
            counts[split] += 1
        if all(c == n_slim for c in counts.values()):
            break
    return set(slim_qids)


def load_ids(name: str, root: Path, n: int) -> list[str]:
    return [ex.qid for ex in registry.get(name).load(LoadContext(root, n, seed=123))]  # the seed is ignored


def _image(path: Path, size: tuple[int, int] = (4, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_the_shuffle_is_pythons_random_21() -> None:
    # Random(21).shuffle(list(range(10))) == [7, 0, 4, 1, 3, 9, 5, 8, 6, 2]: slim-3 of 10 is {7, 0, 4}
    assert reference_slim(range(10), 3) == {0, 4, 7}


def test_vqav2_slim(tmp_path: Path) -> None:
    qids = [900 + 7 * i for i in range(15)]
    annotations = [{"question_id": q, "image_id": 1, "question_type": "what", "answer_type": "other",
                    "multiple_choice_answer": "x", "answers": [{"answer": "x", "answer_id": 1}]} for q in qids]
    questions = [{"question_id": q, "image_id": 1, "question": f"q{q}?"} for q in reversed(qids)]  # another order
    _json(tmp_path / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json", {"questions": questions})
    _json(tmp_path / "vqav2/v2_mscoco_val2014_annotations.json", {"annotations": annotations})
    _image(tmp_path / "coco/val2014/COCO_val2014_000000000001.jpg")
    assert set(load_ids("vqav2", tmp_path, 5)) == {str(q) for q in reference_slim(qids, 5)}  # annotations order


def test_gqa_vizwiz_textvqa_slim(tmp_path: Path) -> None:
    gqa = {str(2000 + i): {"imageId": "n1", "question": f"q{i}", "answer": "a", "isBalanced": True} for i in range(14)}
    _json(tmp_path / "gqa/testdev_balanced_questions.json", gqa)
    _image(tmp_path / "gqa/images/n1.jpg")
    assert set(load_ids("gqa", tmp_path, 4)) == reference_slim(list(gqa), 4)

    vizwiz = [{"image": f"VizWiz_val_{i:08d}.jpg", "question": "q", "answerable": 1, "answer_type": "other",
               "answers": [{"answer": "a", "answer_confidence": "yes"}] * 10} for i in range(13)]
    _json(tmp_path / "vizwiz/val.json", vizwiz)
    for r in vizwiz:
        _image(tmp_path / "vizwiz/val" / r["image"])
    expected = {f"VizWiz_val_{i:08d}" for i in reference_slim(range(13), 6)}  # indexed by position
    assert set(load_ids("vizwiz", tmp_path, 6)) == expected

    data = [{"question_id": 500 + i, "image_id": f"img{i}", "question": f"q{i}", "answers": ["a"] * 10,
             "ocr_tokens": []} for i in range(11)]
    _json(tmp_path / "textvqa/TextVQA_0.5.1_val.json", {"data": data})
    for d in data:
        _image(tmp_path / f"textvqa/train_images/{d['image_id']}.jpg")
    expected = {str(q) for q in reference_slim([d["question_id"] for d in data], 3)}
    assert set(load_ids("textvqa", tmp_path, 3)) == set(load_ids("textvqa_ocr", tmp_path, 3)) == expected


def test_pope_slim_takes_n_per_split(tmp_path: Path) -> None:
    sizes = {"adversarial": 7, "popular": 6, "random": 5}
    ids, split_of = [], {}
    for split, n in sizes.items():
        rows = [{"question_id": i + 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a cat?",
                 "label": "yes" if i % 2 else "no"} for i in range(n)]
        path = tmp_path / f"pope/coco_pope_{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        for r in rows:
            ids.append(f"{split}-{r['question_id']}")
            split_of[ids[-1]] = split
    _image(tmp_path / "coco/val2014/COCO_val2014_000000000001.jpg")
    got = load_ids("pope", tmp_path, 2)
    assert set(got) == reference_slim(ids, 2, split_of) and len(got) == 6


def test_tallyqa_slim_takes_n_simple_and_n_complex(tmp_path: Path) -> None:
    rows = [{"image": "VG_100K/1.jpg", "question": "How many?", "answer": i % 4, "issimple": i % 3 == 0,
             "question_id": 7000 + i, "image_id": 1, "data_source": "amt"} for i in range(17)]
    _json(tmp_path / "tallyqa/test.json", rows)
    _image(tmp_path / "tallyqa/VG_100K/1.jpg")
    split_of = {r["question_id"]: "simple" if r["issimple"] else "complex" for r in rows}
    expected = {str(q) for q in reference_slim([r["question_id"] for r in rows], 3, split_of)}
    assert set(load_ids("tallyqa", tmp_path, 3)) == expected


def test_ai2d_slim_takes_n_val_and_n_test(tmp_path: Path) -> None:
    ids, split_of = [], {}
    for n in (1, 2, 3, 5, 8, 13):
        questions = {f"question {k} of {n}?": {"answerTexts": ["a", "b", "c", "d"], "correctAnswer": k % 4,
                                                "questionId": f"{n}.png-{k}", "abcLabel": False} for k in range(3)}
        _json(tmp_path / f"ai2d/questions/{n}.png.json", {"imageName": f"{n}.png", "questions": questions})
        _image(tmp_path / f"ai2d/images/{n}.png")
        for q in questions.values():  # diagrams in the order of their numbers (vlm-evaluation: os.listdir)
            ids.append(q["questionId"])
            split_of[q["questionId"]] = "test" if n in (2, 5, 13) else "val"
    (tmp_path / "ai2d/ai2d_test_ids.csv").write_text("2\n5\n13\n")
    assert set(load_ids("ai2d", tmp_path, 2)) == reference_slim(ids, 2, split_of)


def test_ocid_ref_slim_takes_n_per_clutter_level(tmp_path: Path) -> None:
    takes = [0, 20, 10, 17, 9, 16, 3, 12, 19, 5, 14, 18, 1, 11]
    expressions = {str(40 + i): {"take_id": t, "scene_path": "ARID20/s/rgb/a.png", "sentence": "the bowl",
                                 "bbox": "[10, 10, 20, 20]"} for i, t in enumerate(takes)}
    _json(tmp_path / "ocid_ref/val_expressions.json", expressions)
    _image(tmp_path / "ocid_ref/OCID-dataset/ARID20/s/rgb/a.png", (640, 480))
    # vlm-evaluation's get_split: bisect_left([9, 16, 20], take_id)
    split_of = {k: ("min" if e["take_id"] <= 9 else "medium" if e["take_id"] <= 16 else "max")
                for k, e in expressions.items()}
    assert set(load_ids("ocid_ref", tmp_path, 2)) == reference_slim(list(expressions), 2, split_of)


def _write_refer(root: Path, folder: str, split_by: str, n_val: int) -> list[str]:
    """A REFER dataset with `n_val` val sentences (and a train ref); returns the val sentence ids in order."""
    refs, ids = [], []
    for r in range(n_val // 2 + 1):
        sentences = [{"sent": f"thing {r}-{s}", "sent_id": 10 * r + s, "raw": "", "tokens": []}
                     for s in range(2 if 2 * r + 2 <= n_val else n_val - 2 * r)]
        refs.append({"ref_id": r, "ann_id": 1, "image_id": 1, "split": "val", "category_id": 1, "sentences": sentences})
        ids += [f"{r}_{s['sent_id']}" for s in sentences]
    refs.insert(1, {"ref_id": 99, "ann_id": 1, "image_id": 1, "split": "train", "category_id": 1,
                    "sentences": [{"sent": "x", "sent_id": 999, "raw": "", "tokens": []}]})
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / f"{folder}/refs({split_by}).p").write_bytes(pickle.dumps(refs, protocol=2))
    _json(root / f"{folder}/instances.json", {"images": [{"id": 1, "width": 100, "height": 100}],
                                               "annotations": [{"id": 1, "image_id": 1, "bbox": [1, 1, 50, 50]}]})
    _image(root / "coco/train2014/COCO_train2014_000000000001.jpg")
    assert len(ids) == n_val
    return ids


def test_refcoco_slim_shuffles_the_three_datasets_together(tmp_path: Path) -> None:
    """build_refcoco_indices indexes RefCOCO, RefCOCO+, RefCOCOg val (in that order) in one index,
    shuffles it once and keeps the first n of each dataset."""
    sizes = {"refcoco": 9, "refcoco+": 7, "refcocog": 5}
    ids, split_of = [], {}
    for name, split_by in (("refcoco", "unc"), ("refcoco+", "unc"), ("refcocog", "umd")):
        for sid in _write_refer(tmp_path, name, split_by, sizes[name]):
            ids.append((name, sid))
            split_of[(name, sid)] = name
    expected = reference_slim(ids, 3, split_of)
    for name in sizes:
        assert {(name, q) for q in load_ids(name, tmp_path, 3)} == {k for k in expected if k[0] == name}


def test_refcoco_slim_uses_the_released_counts_of_absent_datasets(tmp_path: Path) -> None:
    own = _write_refer(tmp_path, "refcoco+", "unc", 8)
    ids = ([("refcoco", i) for i in range(REFER_VAL_SENTENCES["refcoco"])] + [("refcoco+", q) for q in own]
           + [("refcocog", i) for i in range(REFER_VAL_SENTENCES["refcocog"])])
    expected = reference_slim(ids, 4, {k: k[0] for k in ids})
    assert {("refcoco+", q) for q in load_ids("refcoco+", tmp_path, 4)} == {k for k in expected if k[0] == "refcoco+"}


def test_vsr_has_no_slim_set(tmp_path: Path) -> None:
    rows = [{"image": "1.jpg", "caption": f"c{i}", "label": i % 2, "relation": "on"} for i in range(9)]
    (tmp_path / "vsr").mkdir()
    (tmp_path / "vsr/test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _image(tmp_path / "vsr/images/1.jpg")
    assert load_ids("vsr", tmp_path, 2) == [str(i) for i in range(9)]


def test_smaller_slim_sets_lie_inside_larger_ones(tmp_path: Path) -> None:
    rows = [{"image": "VG_100K/1.jpg", "question": "How many?", "answer": 1, "issimple": i % 2 == 0,
             "question_id": i, "image_id": 1, "data_source": "amt"} for i in range(40)]
    _json(tmp_path / "tallyqa/test.json", rows)
    _image(tmp_path / "tallyqa/VG_100K/1.jpg")
    small, large = load_ids("tallyqa", tmp_path, 4), load_ids("tallyqa", tmp_path, 12)
    assert len(small) == 8 and len(large) == 24 and set(small) <= set(large)
    assert small == sorted(small, key=int)  # returned in file order
