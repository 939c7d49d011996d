"""Loaders and scorers of the paper's benchmarks, one module per family.

`vqa` (VQAv2, GQA, VizWiz, TextVQA without and with OCR tokens), `refer` (RefCOCO, RefCOCO+,
RefCOCOg, OCID-Ref) and `closed_set` (VSR, TallyQA, POPE, AI2D) each register their benchmarks on
import; `answers` holds the answer normalisation rules of the paper's code; `files` what the loaders
share: reading the released files under the data root (JSON, JSON lines, REFER's pickles through a
restricted unpickler), the missing-file error and vlm-evaluation's slim subsets.
"""
