"""What we learn from a sweep: tracking store (or a CSV of published results) -> pandas ->
statistics, figures, tables and one self-contained HTML report.

Notebook use::

    from analysis import load_store, load_csv, analyze, write_report
    results = load_store("sqlite:///mlflow.db", experiments="vlm_sweeps")
    a = analyze(results)              # DataFrames: a.summary, a.options["encoder"],
    a.summary[["label", "zscore_mean"]]  # a.comparisons, a.effects, a.anova, a.runs
    write_report(a, "report/")

The command line (`python -m analysis --help`) does the same. Scores are in percent throughout.
"""

import importlib
from typing import Any

# loaded on first use (PEP 562): the sweep-end callback (analysis.sweep_report) is imported by every
# Hydra run, which must not pay for pandas, MLflow and matplotlib before it needs them
_EXPORTS = {"load_csv": "analysis.external", "write_report": "analysis.report",
            "AnalysisError": "analysis.results", "Results": "analysis.results",
            "load_store": "analysis.store", "Analysis": "analysis.summary", "analyze": "analysis.summary"}

__all__ = ["Analysis", "AnalysisError", "Results", "analyze", "load_csv", "load_store",
           "write_report"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
