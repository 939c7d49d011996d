"""Loaders and scorers of the paper's benchmarks, one module per family.

`vqa` (VQAv2, GQA, VizWiz, TextVQA), `refer` (RefCOCO, RefCOCO+, RefCOCOg, OCID-Ref) and
`closed_set` (VSR, TallyQA, POPE, AI2D) each register their benchmarks on import; `files` holds
what they share: reading the real files under the data root, the missing-file error and the
deterministic slim subsets.
"""
