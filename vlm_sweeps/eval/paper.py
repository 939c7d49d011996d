"""The paper's benchmark suite: importing this module registers all of it.

The twelve benchmarks of the paper, TextVQA counted once but asked twice as vlm-evaluation asks it
(`TextVQATaskRunner`): `textvqa` without OCR tokens in the prompt ("TextVQA-Pure") and `textvqa_ocr`
with them ("TextVQA-OCR"). The registry imports this module lazily; the benchmarks live in
`vlm_sweeps.eval.families` (see each module's docstring for the files expected under the data root).
"""

from __future__ import annotations

from vlm_sweeps.eval.families import closed_set, refer, vqa
from vlm_sweeps.eval.families.files import MissingBenchmarkFile

PAPER_BENCHMARKS: tuple[str, ...] = (
    "vqav2", "gqa", "vizwiz", "textvqa", "textvqa_ocr",
    "refcoco", "refcoco+", "refcocog", "ocid_ref",
    "vsr", "tallyqa", "pope", "ai2d",
)  # fmt: skip

__all__ = ["PAPER_BENCHMARKS", "MissingBenchmarkFile", "closed_set", "refer", "vqa"]
