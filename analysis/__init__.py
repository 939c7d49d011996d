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

from analysis.external import load_csv
from analysis.report import write_report
from analysis.results import AnalysisError, Results
from analysis.store import load_store
from analysis.summary import Analysis, analyze

__all__ = ["Analysis", "AnalysisError", "Results", "analyze", "load_csv", "load_store",
           "write_report"]
