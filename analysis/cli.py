"""Command line: `python -m analysis` turns a tracking store or a results CSV into a report.

    python -m analysis --tracking-uri sqlite:///mlflow.db --out report/ [--experiment NAME]
                       [--sweep-id ID] [--by AXIS ...] [--log-to-parent] [--mixed-settings split]
    python -m analysis --results-csv table.csv --by model --out report/

Bad input exits with status 2 and one message saying what was wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from analysis.comparisons import TESTS
from analysis.figures import SCALES
from analysis.power import CORRECTIONS
from analysis.results import AnalysisError, Results
from vlm_sweeps import naming

log = logging.getLogger("analysis")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Figures, tables and statistics (z-scores, paired tests, main effects) from "
        "an MLflow store of sweep runs or from a CSV of published results.")
    src = p.add_argument_group("input (one of)")
    src.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
    src.add_argument("--results-csv", metavar="FILE",
                     help="CSV, one row per model/run: --by column(s), benchmark score columns, "
                     "optional seed and label columns (see analysis/external.py)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the report")
    store = p.add_argument_group("MLflow store")
    store.add_argument("--experiment", action="append", metavar="NAME",
                       help="experiment name (repeatable; default vlm_sweeps)")
    store.add_argument("--sweep-id",
                       help="the jobs of this sweep (its multirun folder's name), those it trained and those an "
                            "earlier sweep had finished (default: the latest sweep of the store)")
    store.add_argument("--all-sweeps", action="store_true",
                       help="every FINISHED job run of the store, pooled across sweeps (default: the latest sweep)")
    store.add_argument("--filter", default="", metavar="MLFLOW_FILTER",
                       help="extra search filter, e.g. \"params.scale = 'tiny'\"")
    log_group = store.add_mutually_exclusive_group()
    log_group.add_argument("--log-to-parent", dest="log_to_parent", action="store_true",
                           default=None, help="log the report to the sweep's parent run "
                           "(default: on when --sweep-id is given)")
    log_group.add_argument("--no-log-to-parent", dest="log_to_parent", action="store_false")
    store.add_argument("--mixed-settings", choices=["refuse", "split"], default="refuse",
                       help="a benchmark whose runs were scored under different evaluation settings "
                       "(examples, slim size, version, blind, generation): refuse with the runs of each "
                       "(default), or split it into one benchmark per setting, compared within itself")
    store.add_argument("--log-zscores", action="store_true",
                       help="also log analysis/zscore_mean on each analysed job run")
    p.add_argument("--by", action="append", metavar="COLUMN",
                   help="axis/column to compare (repeatable or comma-separated); required with "
                   "--results-csv; with a store it restricts the axes (default: all that vary)")
    p.add_argument("--label", help="CSV column with display names (default: model/name/label)")
    p.add_argument("--benchmarks", help="CSV benchmark columns, comma-separated (default: "
                   "every numeric column)")
    p.add_argument("--scale", choices=["auto", "fraction", "percent"], default="auto",
                   help="CSV score scale (default: auto, 0-1 read as fractions)")
    p.add_argument("--baseline", action="append", default=[], metavar="AXIS=OPTION",
                   help="option other options are compared with (default: first option)")
    p.add_argument("--test", choices=TESTS, default="t",
                   help="one-sided paired test (default: t, which reaches the level with few "
                   "pairs; wilcoxon needs >= 7 non-zero pairs for 0.01 before any correction)")
    p.add_argument("--correction", choices=CORRECTIONS, default="holm",
                   help="multiple-comparison control over each axis' options x metrics x "
                   "directions (default: holm; raw p-values are kept in the tables)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    p.add_argument("--radar-scale", choices=SCALES, default="floor",
                   help="radar spokes: floor (default: from the blind control / chance / 0 to the "
                   "best option), percent (0-100), or minmax (per spoke; exaggerates, labelled)")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--no-pdf", action="store_true", help="PNG figures only")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _baselines(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        axis, sep, option = item.partition("=")
        if not sep or not axis or not option:
            raise AnalysisError(f"--baseline {item!r}: write AXIS=OPTION, e.g. encoder=clip")
        out[axis.strip()] = option.strip()
    return out


def run(args: argparse.Namespace) -> int:
    """Load, analyse, write, optionally publish; returns the exit status."""
    from analysis import external, publish, report, store, summary
    from analysis.page import settings_text

    if args.results_csv and args.tracking_uri:
        raise AnalysisError("give either --tracking-uri or --results-csv, not both")
    baselines = _baselines(args.baseline)
    client = parent = None
    if args.results_csv:
        if not _split(args.by):
            raise AnalysisError("--results-csv needs --by COLUMN naming the column to compare")
        results: Results = external.load_csv(
            args.results_csv, _split(args.by), args.label,
            _split([args.benchmarks]) if args.benchmarks else None, args.scale)
    else:
        uri = args.tracking_uri or store.default_tracking_uri()
        experiments = args.experiment or [naming.DEFAULT_EXPERIMENT]
        if args.all_sweeps and args.sweep_id:
            raise AnalysisError("give either --sweep-id or --all-sweeps, not both")
        scope = None if args.all_sweeps else store.sweep_scope(uri, experiments, args.sweep_id)
        sweep_id, signatures = scope if scope else (None, None)
        results = store.load_store(uri, experiments, sweep_id if signatures is None else None,
                                   _split(args.by) or None, args.filter, signatures=signatures,
                                   mixed_settings=args.mixed_settings)
        sweeps = sorted({s for s in results.runs.get("sweep_id", []) if isinstance(s, str)})
        if scope is None:
            print(f"all {len(results.runs)} FINISHED job runs of the store, from {len(sweeps)} sweep(s)"
                  + (": " + ", ".join(sweeps) if sweeps else ""))
        else:
            how = "" if args.sweep_id else " (the latest; --sweep-id ID for another, --all-sweeps for every run)"
            print(f"sweep {sweep_id}{how}: {len(results.runs)} FINISHED job runs")
        client = store.open_store(uri)
        if args.log_to_parent:  # asked for: fail before writing anything
            parent = publish.find_parent(client, results, args.sweep_id)
        elif args.log_to_parent is None and args.sweep_id:  # the default for a chosen sweep
            try:
                parent = publish.find_parent(client, results, args.sweep_id)
            except AnalysisError as exc:
                log.warning("not logging the report to a parent run: %s", exc)
    analysis = summary.analyze(results, baselines, args.test, args.alpha, args.ci, args.correction)
    files = report.write_report(analysis, args.out, ("png",) if args.no_pdf else ("png", "pdf"),
                                args.radar_scale)

    top = analysis.summary.head(5)
    print(f"{len(analysis.runs)} runs, {len(analysis.summary)} configurations, "
          f"axes: {', '.join(results.axes) or 'none vary'}")
    if results.eval_settings:
        print(f"evaluation settings: {settings_text(results)}")
    for rank, label, z in zip(top["rank"], top["label"], top["zscore_mean"]):
        print(f"  {rank:>3}. {label}  zscore_mean={z:+.3f}")
    decided = analysis.comparisons[analysis.comparisons["verdict"].isin(["better", "worse"])]
    print(f"verdicts ({args.test} test, {args.correction}, alpha={args.alpha:g}): "
          f"{len(decided)} of {len(analysis.comparisons)} comparisons")
    for _, row in decided.iterrows():
        print(f"  {row['axis']}: {row['option']} {row['verdict']} than {row['baseline']} on "
              f"{row['metric']} ({row['mean_delta']:+.2f}, adjusted p={row['p_adjusted']:.2g})")
    if parent:
        text = (Path(args.out) / "summary.md").read_text("utf-8")
        publish.log_report(client, parent, files, publish.note(analysis.summary, text, files))
        print(f"logged {len(files)} files to parent run {parent}")
    if args.log_zscores and client is not None:
        count = publish.log_zscores(client, analysis.runs)
        print(f"logged {publish.ZSCORE_METRIC} on {count} runs")
    print(f"report: {os.path.join(args.out, 'report.html')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)  # ours only, not fontTools
    # a tracking server that does not answer should fail in seconds, not after minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    try:
        return run(args)
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
