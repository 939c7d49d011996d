"""Read a CSV of external results (e.g. a paper's table) into `Results`.

Schema (one row per model or run, header row required):
- `--by` column(s): the compared design choice(s), e.g. `model`, or `encoder,resize`. Required.
- benchmark columns: every numeric column not named otherwise (or exactly the `benchmarks`
  given). A column header is a benchmark (`VQAv2`) or a metric name (`vqav2/accuracy`). Values
  are fractions (0-1) or percents (0-100): with `scale="auto"` a table whose values all lie
  within 0..1 is read as fractions. Empty cells are allowed (left out of that benchmark).
- `seed` (optional): rows that agree on every other column and differ in seed are repeats of
  one configuration, summarised as mean and confidence interval.
- label column (optional, `label`, or auto: `model`, `name`, `label`, `run`, `run_name` when not
  in `--by`): a display name, not part of a configuration's identity.
- any other text column: context that identifies a configuration (rows are only paired when
  their context agrees).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from analysis.results import AnalysisError, Results

log = logging.getLogger(__name__)

LABEL_CANDIDATES = ("model", "name", "label", "run", "run_name")
SEED_COLUMN = "seed"


def load_csv(
    path: str | Path,
    by: list[str] | str,
    label: str | None = None,
    benchmarks: list[str] | None = None,
    scale: str = "auto",
) -> Results:
    """Rows of the CSV at `path` compared along the `by` column(s)."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"results CSV {path} does not exist; pass --results-csv FILE")
    try:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"cannot read {path} as CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise AnalysisError(f"{path} has a header but no rows; add one row per model/run")
    by = [b.strip() for b in (by.split(",") if isinstance(by, str) else by) if b.strip()]
    if not by:
        raise AnalysisError("--by names no column; name the column(s) to compare, e.g. --by model")
    absent = [b for b in (*by, *([label] if label else [])) if b not in frame]
    if absent:
        raise AnalysisError(
            f"{path} has no column {', '.join(map(repr, absent))}; its columns are "
            f"{', '.join(frame.columns)}. Pass --by with one of them"
        )
    if label is None:
        label = next((c for c in LABEL_CANDIDATES if c in frame and c not in by), None)
    seed = SEED_COLUMN if SEED_COLUMN in frame and SEED_COLUMN not in by else None
    named = {*by, *([label] if label else []), *([seed] if seed else [])}

    numeric = {c: pd.to_numeric(frame[c].where(frame[c] != ""), errors="coerce") for c in frame}
    if benchmarks is not None:
        missing = [b for b in benchmarks if b not in frame]
        if missing:
            raise AnalysisError(f"{path} has no benchmark column {missing}; columns: {list(frame)}")
        bad = [b for b in benchmarks if b in named]
        if bad:
            raise AnalysisError(f"{bad} cannot be both a benchmark and --by/label/seed")
    else:
        benchmarks = [c for c in frame if c not in named and _is_numeric(frame[c], numeric[c])]
    if not benchmarks:
        raise AnalysisError(
            f"{path} has no numeric benchmark column besides {sorted(named)}; add one column "
            "per benchmark holding scores (0-1 or 0-100)"
        )
    for b in benchmarks:
        text = frame[b] != ""
        bad_rows = list(frame.index[text & numeric[b].isna()] + 2)  # +2: header, 1-based
        if bad_rows:
            raise AnalysisError(f"column {b!r} of {path} has non-numbers on lines {bad_rows[:10]}")

    runs = frame.copy()
    for b in benchmarks:
        runs[b] = numeric[b].astype(float)
    runs[benchmarks] = runs[benchmarks] * _factor(runs[benchmarks], scale, path)
    context = [c for c in frame if c not in named and c not in benchmarks]
    runs.insert(0, "run", [f"row{i + 2}" for i in range(len(runs))])
    for axis in by:
        if runs[axis].nunique() < 2:
            log.warning("column %r holds a single value: nothing to compare along it", axis)
    axes = [a for a in by if runs[a].nunique() > 1]
    return Results(
        runs=runs,
        axes=axes,
        benchmarks=benchmarks,
        context=context,
        seed=seed,
        label=label,
        option_order={a: list(dict.fromkeys(runs[a])) for a in axes},  # file order
        constants={c: runs[c].iloc[0] for c in [*by, *context] if runs[c].nunique() == 1},
        metric_names={b: b for b in benchmarks},
        source=f"results CSV {path} ({len(runs)} rows)",
    )


def _is_numeric(text: pd.Series, numbers: pd.Series) -> bool:
    """A column is a benchmark when every non-empty cell parses as a number."""
    filled = text != ""
    return bool(filled.any()) and bool(numbers[filled].notna().all())


def _factor(scores: pd.DataFrame, scale: str, path: Path) -> float:
    """Multiplier turning the CSV's values into percent."""
    if scale not in ("auto", "fraction", "percent"):
        raise AnalysisError(f"--scale {scale!r}: choose auto, fraction or percent")
    if scale == "auto":
        top = scores.abs().max().max()
        scale = "fraction" if top <= 1.0 else "percent"
        log.info("%s: scores read as %ss (largest |value| %.4g)", path.name, scale, top)
    factor = 100.0 if scale == "fraction" else 1.0
    if ((scores * factor) > 100.0 + 1e-9).any().any() or (scores < 0).any().any():
        log.warning("%s: some scores lie outside 0-100%%; check --scale", path.name)
    return factor
