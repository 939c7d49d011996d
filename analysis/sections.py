"""A study's report, section by section.

Runs of a study (`+study=NAME`, `hydra/sweeper=ablation`) carry the tags `vlm_sweeps.section`
(the paper's "4.1" ... "4.4", "prism"; an ablation's axis) and `vlm_sweeps.experiment` (the
experiment's id). Each section is analysed on its own runs plus the baseline's: what the section
changes, compared with what it changes from. The baseline's runs are those tagged
`experiment=baseline` or `section=baseline` (the ablation sweeper), else those holding, on every
axis, the option most of the study's runs hold (each experiment changes one or two axes of it).
"""

from __future__ import annotations

import pandas as pd

from analysis.results import Results
from vlm_sweeps import naming

BASELINE = "baseline"


def _natural(name: str) -> tuple:
    """"4.2" before "4.10", numbers before words."""
    parts = []
    for piece in str(name).replace("-", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return tuple(parts)


def tagged_baseline(runs: pd.DataFrame) -> pd.Series:
    """The runs tagged as a study's or an ablation's baseline (experiment or section `baseline`)."""
    none = pd.Series(None, index=runs.index, dtype=object)
    return (runs.get("experiment", none) == BASELINE) | (runs.get("section", none) == BASELINE)


def baseline_mask(runs: pd.DataFrame, axes: list[str]) -> pd.Series:
    tagged = tagged_baseline(runs)
    if tagged.any():
        return tagged
    mask = pd.Series(True, index=runs.index)
    for axis in axes:
        mask &= runs[axis] == runs[axis].mode().iloc[0]
    return mask


def split_sections(results: Results) -> list[tuple[str, Results]]:
    """(section, its Results) for each section of a study with more than one section; [] when the
    runs carry no section tags."""
    runs = results.runs
    if "section" not in runs or runs["section"].isna().all():
        return []
    design = [c for c in results.config_columns if c in naming.design_axes()]
    study = runs[runs["section"].notna()]
    names = sorted({s for s in study["section"] if s != BASELINE}, key=_natural)
    if len(names) < 2:
        return []
    base = study[baseline_mask(study, design)]
    out = []
    for name in names:
        subset = pd.concat([base, study[study["section"] == name]]).drop_duplicates("run")
        axes = [c for c in design if subset[c].nunique() > 1]
        if not axes:
            continue
        context = [c for c in results.config_columns if c not in axes]
        label = "experiment" if subset.get("experiment") is not None and \
            subset["experiment"].notna().all() else None
        out.append((name, Results(
            runs=subset.reset_index(drop=True), axes=axes, benchmarks=results.benchmarks,
            context=context, seed=results.seed, label=label,
            # the baseline's option first: it is the one each comparison is made against
            option_order={a: [*dict.fromkeys([*base[a], *results.option_order.get(a, [])])] for a in axes},
            constants=results.constants, metric_names=results.metric_names,
            source=f"{results.source}, section {name}", parent_run_ids=results.parent_run_ids,
            eval_settings=results.eval_settings, setting_notes=results.setting_notes)))
    return out
