"""Each of the twelve paper benchmarks loads its real file format: counts, prompts, answers, boxes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from vlm_sweeps import naming
from vlm_sweeps.eval import registry
from vlm_sweeps.eval.examples import EvalExample
from vlm_sweeps.eval.families.files import MissingBenchmarkFile, select_subset
from vlm_sweeps.eval.families.vqa import load_textvqa
from vlm_sweeps.eval.paper import PAPER_BENCHMARKS
from vlm_sweeps.eval.registry import LoadContext

SHORT = "\nAnswer the question using a single word or phrase."


def load(name: str, root: Path, max_examples: int | None = None, seed: int = 7) -> list[EvalExample]:
    return registry.get(name).load(LoadContext(root, max_examples, seed))


def test_every_paper_benchmark_is_registered_under_its_headline_name() -> None:
    paper = {name for name in naming.HEADLINE_METRIC if not name.startswith("synth_")}
    assert set(PAPER_BENCHMARKS) == paper
    assert paper <= set(registry.names())


def test_vqav2(paper_root: Path) -> None:
    examples = load("vqav2", paper_root)
    assert [ex.qid for ex in examples] == ["420", "421", "70"]
    first = examples[0]
    assert first.question == "How many dogs are there?" + SHORT
    assert first.answers == ("2",) * 9 + ("3",)
    assert first.image == str(paper_root / "coco/val2014/COCO_val2014_000000000042.jpg")
    assert first.mode == "generate" and first.meta["answer_type"] == "number"


def test_gqa(paper_root: Path) -> None:
    examples = load("gqa", paper_root)
    assert [(ex.qid, ex.answers) for ex in examples] == [("20968379", ("left",)), ("20968380", ("no",))]
    assert examples[0].question == "Is the bowl to the left or right of the cup?" + SHORT
    assert examples[0].image == str(paper_root / "gqa/images/n288870.jpg")


def test_vizwiz(paper_root: Path) -> None:
    examples = load("vizwiz", paper_root)
    assert [ex.qid for ex in examples] == ["VizWiz_val_00000000", "VizWiz_val_00000001", "VizWiz_val_00000002"]
    assert examples[0].question == (
        "What is this?\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT
    )
    assert [ex.meta["answerable"] for ex in examples] == [True, False, True]
    assert len(examples[1].answers) == 10 and examples[1].answers[0] == "unanswerable"


def test_textvqa_with_and_without_ocr_tokens(paper_root: Path, tmp_path: Path, writers: dict[str, Any]) -> None:
    plain = load("textvqa", paper_root)
    assert [ex.qid for ex in plain] == ["34602", "34603"]
    assert plain[0].question == "what is the brand of this camera?" + SHORT  # registered: no OCR tokens
    assert plain[0].image == str(paper_root / "textvqa/train_images/003a8ae2ef43b901.jpg")
    assert plain[0].answers.count("dakota") == 7

    inline = load_textvqa(LoadContext(paper_root), ocr_tokens=True)
    assert inline[0].question == "what is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL" + SHORT

    writers["textvqa"](tmp_path, inline_ocr=False)  # OCR tokens only in the Rosetta file
    rosetta = load_textvqa(LoadContext(tmp_path), ocr_tokens=True)
    assert "Reference OCR token: KODAK\n" in rosetta[0].question


REFER_PROMPT = 'Please provide the bounding box coordinate of the region this sentence describes: "{}"'


@pytest.mark.parametrize("name", ["refcoco", "refcocog"])
def test_refcoco_refer_layout(paper_root: Path, name: str) -> None:
    examples = load(name, paper_root)
    assert [ex.qid for ex in examples] == ["1_5", "1_6"]  # val sentences only; the train ref is left out
    assert examples[0].question == REFER_PROMPT.format("dog on the left")
    # [20, 10, 80, 40] (x, y, w, h) on a 200 x 100 image
    assert examples[0].box == pytest.approx((0.1, 0.1, 0.5, 0.5))
    assert examples[0].image == str(paper_root / "coco/train2014/COCO_train2014_000000000010.jpg")
    assert (examples[0].meta["width"], examples[0].meta["height"]) == (200, 100)


def test_refcoco_plus_mdetr_layout(paper_root: Path) -> None:
    (example,) = load("refcoco+", paper_root)
    assert example.question == REFER_PROMPT.format("dog on the left")
    assert example.box == pytest.approx((0.1, 0.1, 0.5, 0.5))
    assert example.image.endswith("COCO_train2014_000000000010.jpg")


def test_refcoco_pickle_is_never_opened(tmp_path: Path) -> None:
    (tmp_path / "refcoco").mkdir()
    (tmp_path / "refcoco/refs(unc).p").write_bytes(b"not a pickle; loading it would fail differently")
    with pytest.raises(MissingBenchmarkFile, match=r"pickles are not loaded.*refs\(unc\)\.json"):
        load("refcoco", tmp_path)


def test_ocid_ref(paper_root: Path) -> None:
    examples = load("ocid_ref", paper_root)
    assert [ex.qid for ex in examples] == ["0", "1"]
    assert examples[0].question == REFER_PROMPT.format("the red bowl")
    # "[16, 12, 32, 24]" (x1, y1, x2, y2 pixels) on a 64 x 48 image, size read from the image
    assert examples[0].box == pytest.approx((0.25, 0.25, 0.5, 0.5))
    assert examples[1].box == pytest.approx((0.0, 0.0, 0.5, 1.0))
    assert [ex.meta["clutter"] for ex in examples] == ["min_clutter", "max_clutter"]


def test_vsr(paper_root: Path) -> None:
    examples = load("vsr", paper_root)
    assert [ex.answers for ex in examples] == [("True",), ("False",)]
    assert examples[0].question == (
        'Based on the image, is this statement "True" or "False"? The dog is on the bed.\n'
        'Respond with "True" or "False" directly.'
    )
    assert examples[0].choices == ("True", "False") and examples[0].mode == "closed_set"
    assert examples[0].image == str(paper_root / "vsr/images/000000085637.jpg")


def test_tallyqa(paper_root: Path) -> None:
    examples = load("tallyqa", paper_root)
    assert [ex.answers[0] for ex in examples] == ["C", "A", "L"]  # counts 2, 0, 11 as option letters
    assert examples[0].choices == tuple("ABCDEFGHIJKLMNOP")
    assert examples[0].question.startswith("How many zebras are there?\nA. 0\nB. 1\nC. 2\n")
    assert examples[0].question.endswith("P. 15\nAnswer with the option's letter from the given choices directly.")
    assert [ex.meta["split"] for ex in examples] == ["simple", "complex", "complex"]
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


def test_ai2d_test_split_only(paper_root: Path) -> None:
    examples = load("ai2d", paper_root)
    assert [ex.qid for ex in examples] == ["1.png-0", "1.png-1", "10.png-0"]  # diagram 2 is not a test diagram
    assert examples[0].question == (
        "Which stage comes after the egg?\nA. adult\nB. larva\nC. pupa\nD. egg\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert [ex.answers[0] for ex in examples] == ["B", "C", "A"]
    assert examples[0].choices == ("A", "B", "C", "D")
    assert examples[2].image == str(paper_root / "ai2d/images/10.png")


# --- missing files and slim subsets -------------------------------------------------------------


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


def test_slim_subset_is_deterministic_and_balanced(paper_root: Path) -> None:
    first = load("pope", paper_root, max_examples=3, seed=1)
    assert first == load("pope", paper_root, max_examples=3, seed=1)
    assert sorted(ex.meta["split"] for ex in first) == ["adversarial", "popular", "random"]
    assert len(load("vqav2", paper_root, max_examples=2)) == 2


def test_select_subset_nests_smaller_subsets_in_larger_ones() -> None:
    records = list(range(1000))
    small, large = select_subset(records, 64, seed=3), select_subset(records, 256, seed=3)
    assert len(small) == 64 and set(small) <= set(large)
    assert small == sorted(small)  # file order kept
    assert select_subset(records, 64, seed=4) != small
    assert select_subset(records, None, seed=3) == records


def test_loaders_work_from_a_copied_root(paper_root: Path, tmp_path: Path) -> None:
    """Paths are resolved against the root given at load time, not where the files were written."""
    copy = tmp_path / "copy"
    shutil.copytree(paper_root, copy)
    assert load("gqa", copy)[0].image == str(copy / "gqa/images/n288870.jpg")
