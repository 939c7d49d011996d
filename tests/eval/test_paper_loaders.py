"""Each paper benchmark loads its released file format: counts, prompts, answers, boxes, splits."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from vlm_sweeps import naming
from vlm_sweeps.eval import registry
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.eval.families.files import MissingBenchmarkFile, read_plain_pickle
from vlm_sweeps.eval.paper import PAPER_BENCHMARKS
from vlm_sweeps.eval.registry import LoadContext

SHORT = "\nAnswer the question using a single word or phrase."
REFER_PROMPT = 'Please provide the bounding box coordinate of the region this sentence describes: "{}"'


def load(name: str, root: Path, max_examples: int | None = None, seed: int = 7) -> list[EvalExample]:
    return registry.get(name).load(LoadContext(root, max_examples, seed))


def test_every_paper_benchmark_is_registered_under_its_headline_name() -> None:
    paper = {name for name in naming.HEADLINE_METRIC if not name.startswith("synth_")}
    assert set(PAPER_BENCHMARKS) == paper
    assert paper <= set(registry.names())
    assert len(PAPER_BENCHMARKS) == 13  # the paper's 12, TextVQA asked without and with OCR tokens


def test_vqav2(paper_root: Path) -> None:
    examples = load("vqav2", paper_root)
    assert [ex.qid for ex in examples] == ["420", "421", "70", "71"]  # annotations order
    first = examples[0]
    assert first.question == "How many dogs are there?" + SHORT
    assert first.answers == ("2",) * 9 + ("3",)
    assert first.image == str(paper_root / "coco/val2014/COCO_val2014_000000000042.jpg")
    assert first.mode == "generate" and first.meta["answer_type"] == "number"
    assert registry.get("vqav2").max_new_tokens == 128  # vlm-evaluation's PrismaticVLM(max_length=128)


def test_gqa(paper_root: Path) -> None:
    examples = load("gqa", paper_root)
    assert [(ex.qid, ex.answers) for ex in examples] == [("20968379", ("left",)), ("20968380", ("no",))]
    assert examples[0].question == "Is the bowl to the left or right of the cup?" + SHORT
    assert examples[0].image == str(paper_root / "gqa/images/n288870.jpg")


def test_vizwiz(paper_root: Path) -> None:
    examples = load("vizwiz", paper_root)
    assert [ex.qid for ex in examples] == [f"VizWiz_val_{i:08d}" for i in range(4)]
    assert examples[0].question == (
        "What is this?\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT
    )
    assert [ex.meta["answerable"] for ex in examples] == [True, False, True, True]
    assert len(examples[1].answers) == 10 and examples[1].answers[0] == "unanswerable"



def test_vizwiz_answers_are_kept_as_written(tmp_path: Path, writers: dict[str, Any]) -> None:
    writers["vizwiz"](tmp_path, edge_cases=True)
    assert load("vizwiz", tmp_path)[3].answers[-1] == "Unanswerable"  # the reference compares answers raw


def test_textvqa_prompts_come_from_llava_questions_file(paper_root: Path) -> None:
    """vlm-evaluation asks the text of textvqa_val_v051_ocr.jsonl (paired by position) with OCR tokens,
    and the text before "\\nReference OCR token:" without them."""
    plain, ocr = load("textvqa", paper_root), load("textvqa_ocr", paper_root)
    assert [ex.qid for ex in plain] == [ex.qid for ex in ocr] == ["34602", "34603", "34604"]
    assert plain[0].question == "what is the brand of this camera?" + SHORT
    assert ocr[0].question == "what is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL" + SHORT
    assert ocr[1].question == "what does the sign say?\nReference OCR token: STOP, AHEAD" + SHORT  # the jsonl's tokens
    assert ocr[2].question == plain[2].question == "whose bottle is this?" + SHORT  # no token, no line
    assert plain[0].image == str(paper_root / "textvqa/train_images/003a8ae2ef43b901.jpg")
    assert plain[0].answers.count("dakota") == 7


def test_textvqa_without_llava_file_builds_prompts_from_the_val_json(tmp_path: Path, writers: dict[str, Any]) -> None:
    writers["textvqa"](tmp_path, llava_questions=False)  # OCR tokens inline in the val json
    ocr = load("textvqa_ocr", tmp_path)
    assert ocr[1].question == "what does the sign say?\nReference OCR token: STOP" + SHORT
    assert ocr[2].question == "whose bottle is this?" + SHORT
    other = tmp_path / "rosetta"
    writers["textvqa"](other, llava_questions=False, inline_ocr=False)  # OCR tokens only in the Rosetta file
    assert "Reference OCR token: KODAK\n" in load("textvqa_ocr", other)[0].question


def test_textvqa_llava_file_must_match_the_val_json(tmp_path: Path, writers: dict[str, Any]) -> None:
    writers["textvqa"](tmp_path)
    path = tmp_path / "textvqa/textvqa_val_v051_ocr.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n")
    with pytest.raises(ValueError, match="does not match .*line 1 asks 'what does the sign say"):
        load("textvqa", tmp_path)


# --- RefCOCO* and OCID-Ref --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["refcoco", "refcoco+", "refcocog"])
def test_refcoco_reads_the_released_pickle(paper_root: Path, name: str) -> None:
    examples = load(name, paper_root)
    assert [ex.qid for ex in examples] == ["1_5", "1_6", "3_8"]  # val sentences only; the train ref is left out
    assert examples[0].question == REFER_PROMPT.format("dog on the left")
    # [20, 10, 80, 40] (x, y, w, h) on a 200 x 100 image
    assert examples[0].box == (0.1, 0.1, 0.5, 0.5)
    # [4, 4, 10, 10] on 1000 x 1000 is [0.004, 0.004, 0.014, 0.014], stored rounded to 2 decimals
    assert examples[2].box == (0.0, 0.0, 0.01, 0.01)
    assert examples[0].image == str(paper_root / "coco/train2014/COCO_train2014_000000000010.jpg")
    assert (examples[0].meta["width"], examples[0].meta["height"]) == (200, 100)


def test_refcoco_also_reads_a_converted_json_or_mdetr(tmp_path: Path, writers: dict[str, Any]) -> None:
    import json

    writers["refcoco"](tmp_path)
    refs = read_plain_pickle("refcoco", tmp_path / "refcoco/refs(unc).p", "")
    (tmp_path / "refcoco/refs(unc).p").unlink()
    (tmp_path / "refcoco/refs(unc).json").write_text(json.dumps(refs))
    assert [ex.qid for ex in load("refcoco", tmp_path)] == ["1_5", "1_6", "3_8"]

    mdetr = tmp_path / "mdetr"
    writers["refcoco_plus_mdetr"](mdetr)
    (example,) = load("refcoco+", mdetr)
    assert example.question == REFER_PROMPT.format("dog on the left")
    assert example.box == (0.1, 0.1, 0.5, 0.5)


class _Shell:
    """Unpickling this runs `os.system` in a permissive unpickler."""

    def __reduce__(self):
        return (os.system, ("echo unpickled > /dev/null",))


def test_refcoco_pickle_with_any_class_is_refused(tmp_path: Path, writers: dict[str, Any]) -> None:
    writers["refcoco"](tmp_path)
    refs = read_plain_pickle("refcoco", tmp_path / "refcoco/refs(unc).p", "")
    bad = [{**ref, "sentences": [_Shell()]} for ref in refs]
    (tmp_path / "refcoco/refs(unc).p").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p is not a plain-data pickle .*refusing to load posix\.system"):
        load("refcoco", tmp_path)
    (tmp_path / "refcoco/refs(unc).p").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a plain-data pickle"):
        load("refcoco", tmp_path)


def test_plain_data_unpickler_reads_python2_pickles(tmp_path: Path) -> None:
    # what Python 2's cPickle writes for [{"sent": "hello"}]: byte strings (SHORT_BINSTRING), protocol 2
    (tmp_path / "refs.p").write_bytes(b"\x80\x02]q\x00}q\x01(U\x04sentq\x02U\x05helloq\x03ua.")
    assert read_plain_pickle("refcoco", tmp_path / "refs.p", "") == [{"sent": "hello"}]
    (tmp_path / "sets.p").write_bytes(pickle.dumps([{1, 2}, frozenset({3}), (4, 5.5), None, True], protocol=2))
    assert read_plain_pickle("refcoco", tmp_path / "sets.p", "") == [{1, 2}, frozenset({3}), (4, 5.5), None, True]


def test_refcoco_box_outside_its_image_is_refused(tmp_path: Path, writers: dict[str, Any]) -> None:
    import json

    writers["refcoco"](tmp_path)
    instances = json.loads((tmp_path / "refcoco/instances.json").read_text())
    instances["annotations"][0]["bbox"] = [150, 10, 80, 40]  # x2 = 230 > 200
    (tmp_path / "refcoco/instances.json").write_text(json.dumps(instances))
    with pytest.raises(ValueError, match="example 1_5 has box .*outside its 200 x 100 image"):
        load("refcoco", tmp_path)


def test_ocid_ref_boxes_are_corner_pairs_on_640_by_480(paper_root: Path) -> None:
    examples = load("ocid_ref", paper_root)
    assert [ex.qid for ex in examples] == ["0", "1", "2"]
    assert examples[0].question == REFER_PROMPT.format("the red bowl")
    # "[160, 120, 320, 240]" read as x1, y1, x2, y2 pixels of 640 x 480 (as (x, y, w, h) it would end at 480, 360)
    assert examples[0].box == (0.25, 0.25, 0.5, 0.5)
    assert examples[1].box == (0.0, 0.0, 0.5, 1.0)
    # [80, 48, 400, 240] / 640 x 480 = [0.125, 0.1, 0.625, 0.5] -> Python's round(v, 2): 0.12 and 0.62
    assert examples[2].box == (0.12, 0.1, 0.62, 0.5)
    assert [ex.meta["clutter"] for ex in examples] == ["min_clutter", "max_clutter", "medium_clutter"]


def test_ocid_ref_refuses_boxes_that_are_not_corner_pairs(tmp_path: Path, writers: dict[str, Any]) -> None:
    import json

    writers["ocid_ref"](tmp_path)
    path = tmp_path / "ocid_ref/val_expressions.json"
    data = json.loads(path.read_text())
    data["2"]["bbox"] = "[400, 48, 80, 240]"  # (x, y, w, h) of an object narrower than its x: not x1 < x2
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="ocid_ref: example 2 has box"):
        load("ocid_ref", tmp_path)


# --- closed-set benchmarks --------------------------------------------------------------------


def test_vsr(paper_root: Path) -> None:
    examples = load("vsr", paper_root)
    assert [ex.answers for ex in examples] == [("True",), ("False",)]
    assert examples[0].question == (
        'Based on the image, is this statement "True" or "False"? The dog is on the bed.\n'
        'Respond with "True" or "False" directly.'
    )
    assert examples[0].choices == ("True", "False") and examples[0].mode == "closed_set"
    assert examples[0].image == str(paper_root / "vsr/images/000000085637.jpg")
    assert load("vsr", paper_root, max_examples=1) == examples  # no slim VSR in vlm-evaluation


def test_tallyqa(paper_root: Path) -> None:
    examples = load("tallyqa", paper_root)
    assert [ex.answers[0] for ex in examples] == ["C", "A", "L", "B"]  # counts 2, 0, 11, 1 as option letters
    assert examples[0].choices == tuple("ABCDEFGHIJKLMNOP")
    assert examples[0].question.startswith("How many zebras are there?\nA. 0\nB. 1\nC. 2\n")
    assert examples[0].question.endswith("P. 15\nAnswer with the option's letter from the given choices directly.")
    assert [ex.meta["split"] for ex in examples] == ["simple", "complex", "complex", "simple"]
    assert examples[1].image == str(paper_root / "tallyqa/val2014/COCO_val2014_000000000042.jpg")


def test_pope(paper_root: Path) -> None:
    examples = load("pope", paper_root)
    assert [ex.qid for ex in examples] == [
        "adversarial-1", "adversarial-2", "popular-1", "popular-2", "random-1", "random-2",
    ]  # fmt: skip
    assert examples[0].question == "Is there a snowboard in the image?" + SHORT
    assert [ex.answers[0] for ex in examples[:2]] == ["yes", "no"]
    assert examples[0].choices == ("Yes", "No") and examples[0].mode == "closed_set"
    assert examples[0].image == str(paper_root / "coco/val2014/COCO_val2014_000000310196.jpg")


def test_ai2d_has_val_and_test_questions(paper_root: Path) -> None:
    examples = load("ai2d", paper_root)
    # diagrams by number (1, 2, 10); 2 is not in ai2d_test_ids.csv, so it is a val diagram
    assert [(ex.qid, ex.meta["split"]) for ex in examples] == [
        ("1.png-0", "test"), ("1.png-1", "test"), ("2.png-0", "val"), ("2.png-1", "val"), ("10.png-0", "test")]
    assert examples[0].question == (
        "Which stage comes after the egg?\nA. adult\nB. larva\nC. pupa\nD. egg\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert [ex.answers[0] for ex in examples] == ["B", "C", "B", "A", "A"]
    assert examples[0].choices == ("A", "B", "C", "D")
    assert examples[4].image == str(paper_root / "ai2d/images/10.png")


# --- missing files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAPER_BENCHMARKS)
def test_missing_files_name_benchmark_and_path(tmp_path: Path, name: str) -> None:
    with pytest.raises(MissingBenchmarkFile) as info:
        load(name, tmp_path)
    message = str(info.value)
    assert repr(name) in message and str(tmp_path) in message and "Download" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_image_is_reported(tmp_path: Path, writers: dict[str, Any]) -> None:
    writers["vqav2"](tmp_path)
    (tmp_path / "coco/val2014/COCO_val2014_000000000007.jpg").unlink()
    with pytest.raises(MissingBenchmarkFile, match="COCO_val2014_000000000007.jpg"):
        load("vqav2", tmp_path)


def test_loaders_work_from_a_copied_root(paper_root: Path, tmp_path: Path) -> None:
    """Paths are resolved against the root given at load time, not where the files were written."""
    copy = tmp_path / "copy"
    shutil.copytree(paper_root, copy)
    assert load("gqa", copy)[0].image == str(copy / "gqa/images/n288870.jpg")
