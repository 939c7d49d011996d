"""What each run's scores were evaluated with, and the check that runs ranked together on a
benchmark were scored alike.

Every job records per benchmark what its score depends on besides the model: the examples scored,
the slim size, the benchmark's version, the blind control and the generation settings (tag
`vlm_sweeps.eval_setting.<benchmark>`, vlm_sweeps/eval/settings.py). Runs logged before that tag
existed say only their slim size: the tag `vlm_sweeps.evaluated.<benchmark>` of a later evaluation,
else the param `benchmarks.max_examples` of the first. A score evaluated again by something that
recorded no setting reads `unknown`: a headline metric that differs from the score its setting
recorded, or (no setting tag, no evaluated tag) one logged after its run ended.

Runs are compared on a benchmark only where their settings agree: a field one run does not record
(an older run) is not held against it, `unknown` agrees only with `unknown`. Where they differ,
`check` refuses with the runs of each setting and what to do, or (`split`) turns each setting into
a benchmark column of its own (`synth_vqa [n=16]`), scored only by the runs evaluated so.
"""

from __future__ import annotations

import json
import math
from typing import Mapping

import pandas as pd

from analysis.floors import BLIND_COLUMN, CHANCE_COLUMN
from analysis.results import AnalysisError
from vlm_sweeps import naming

SETTING_COLUMN = "setting:"  # runs column "setting:<benchmark>": JSON of the compared fields (str values)
UNKNOWN = "unknown"
MODES = ("refuse", "split")  # what `check` does with a benchmark scored under several settings
PARAM = "benchmarks.max_examples"
_SHOWN_RUNS = 6  # runs named per setting in a refusal; the others are counted
# display order of the recorded fields; others follow alphabetically
ORDER = ("n", "max_examples", "version", "blind", "max_new_tokens", "harness", "dtype")


def _text(value: object) -> str:
    if value is None:
        return "all"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _slim(value: str | None) -> str | None:
    """A legacy slim size (the param's or tag's rendering: "None" for all examples)."""
    return None if value is None else ("all" if value == "None" else value)


def of_run(metrics: Mapping[str, float], timestamps: Mapping[str, int], tags: Mapping[str, str],
           params: Mapping[str, str], end_time: int, benchmark: str) -> dict[str, str]:
    """The compared setting of `benchmark`'s headline score in one run (field -> display text)."""
    key = naming.headline_metric(benchmark)
    recorded = tags.get(naming.TAG_EVAL_SETTING + benchmark)
    if recorded is not None:
        try:
            setting = json.loads(recorded)
        except ValueError:
            setting = None
        if isinstance(setting, dict):
            score, value = setting.get("score"), metrics.get(key)
            if score is not None and value is not None and not _same(float(score), float(value)):
                return {"max_examples": UNKNOWN}  # evaluated again, by something that recorded nothing
            return {k: _text(v) for k, v in setting.items() if k not in naming.EVAL_SETTING_UNCOMPARED}
    later = _slim(tags.get(naming.TAG_EVALUATED + benchmark))
    if later is not None:
        return {"max_examples": later}
    if end_time and timestamps.get(key, 0) > end_time:
        return {"max_examples": UNKNOWN}
    first = _slim(params.get(PARAM))
    return {} if first is None else {"max_examples": first}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def label(setting: Mapping[str, str], fields: list[str] | None = None) -> str:
    """"n=8, max_examples=8, ..." for `fields` (default: all), in display order."""
    keys = [k for k in _ordered(setting) if fields is None or k in fields]
    return ", ".join(f"{k}={setting.get(k, 'not recorded')}" for k in keys)


def _ordered(keys) -> list[str]:
    return [k for k in ORDER if k in keys] + sorted(k for k in keys if k not in ORDER)


def _run_label(row: pd.Series) -> str:
    name = row.get("run_name")
    return f"{name} ({str(row['run'])[:8]})" if isinstance(name, str) and name else str(row["run"])


def check(frame: pd.DataFrame, benchmarks: list[str], mode: str = "refuse"
          ) -> tuple[pd.DataFrame, list[str], dict[str, str], list[str]]:
    """(runs, benchmarks, each benchmark's setting, notes) with no benchmark whose runs were scored
    under different settings: `refuse` raises AnalysisError naming them, `split` makes one column
    per setting. Runs without setting columns (a CSV) pass unchanged."""
    if mode not in MODES:
        raise AnalysisError(f"--mixed-settings {mode!r}: choose one of {', '.join(MODES)}")
    frame = frame.copy()
    shared: dict[str, str] = {}
    notes: list[str] = []
    problems: list[str] = []
    out: list[str] = []
    for bench in benchmarks:
        column = SETTING_COLUMN + bench
        scored = frame[bench].notna() if column in frame else pd.Series(False, index=frame.index)
        if not scored.any():
            out.append(bench)
            continue
        each = {i: json.loads(frame.at[i, column]) if isinstance(frame.at[i, column], str) else {}
                for i in frame.index[scored]}
        fields = _ordered({k for s in each.values() for k in s})
        differ = [f for f in fields if len({s[f] for s in each.values() if f in s}) > 1]
        if not differ:
            common = {f: next(s[f] for s in each.values() if f in s) for f in fields}
            shared[bench] = label(common) or "not recorded"
            out.append(bench)
            continue
        groups: dict[tuple, list] = {}
        for i, s in each.items():
            groups.setdefault(tuple(s.get(f, "not recorded") for f in differ), []).append(i)
        described = {key: ", ".join(f"{f}={v}" for f, v in zip(differ, key)) for key in groups}
        if mode == "refuse":
            parts = []
            for key, rows in groups.items():
                names = [_run_label(frame.loc[i]) for i in rows[:_SHOWN_RUNS]]
                more = f" and {len(rows) - _SHOWN_RUNS} more" if len(rows) > _SHOWN_RUNS else ""
                parts.append(f"    {described[key]}: {len(rows)} run(s): {', '.join(names)}{more}")
            problems.append(f"  {bench} ({naming.headline_metric(bench)}) was scored with different "
                            f"{', '.join(differ)}:\n" + "\n".join(parts))
            continue
        split = []
        for key, rows in groups.items():
            name = f"{bench} [{described[key]}]"
            frame[name] = frame[bench].where(frame.index.isin(rows))
            for floor in (BLIND_COLUMN, CHANCE_COLUMN):
                if floor + bench in frame:
                    frame[floor + name] = frame[floor + bench]
            frame[SETTING_COLUMN + name] = frame[column].where(frame.index.isin(rows))
            common = {f: next(each[i][f] for i in rows if f in each[i]) for f in fields
                      if any(f in each[i] for i in rows)}
            shared[name] = label(common)
            split.append((name, len(rows)))
            out.append(name)
        frame = frame.drop(columns=[bench])
        notes.append(f"{bench} was scored with different {', '.join(differ)}: compared only within each "
                     "setting, as " + "; ".join(f"{n} ({k} run{'s' if k > 1 else ''})" for n, k in split))
    if problems:
        raise AnalysisError(
            "runs scored under different evaluation settings would be ranked together:\n"
            + "\n".join(problems)
            + "\nEvaluate them alike (re-run their sweep with the one setting, e.g. benchmarks.max_examples=N: "
            "each FINISHED run is evaluated on its checkpoint with what it lacks, nothing trains), leave "
            "runs out (--filter, --sweep-id), or compare within each setting (--mixed-settings split)")
    return frame, out, shared, notes
