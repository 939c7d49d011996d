"""`python -m launchers status [--sweep ID] [--root DIR] [--metric NAME]`: a SLURM sweep's jobs
(its manifest under --root), or `... status --tracking-uri URI [--experiment NAME] [--sweep ID]`:
the job runs of a tracking store (local sweeps, single runs), with dead runs and how to resume them.
Without a SLURM manifest under --root, the store of $MLFLOW_TRACKING_URI (else ./mlflow.db)."""

from __future__ import annotations

import argparse
import sys

from vlm_sweeps import naming, tracking
from vlm_sweeps.redact import redact_uri

from launchers import manifest, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launchers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="one row per job of a sweep submitted with hydra/launcher=slurm, "
                                              "or of a tracking store (--tracking-uri): running, dead, finished...")
    show.add_argument("--sweep", default=None, help="sweep id (its multirun folder name); default: the latest")
    show.add_argument("--root", default=".vlm_sweeps", help="paths.root of the sweep (default: .vlm_sweeps)")
    show.add_argument("--metric", default=None,
                      help="metric column (default: headline metric of the suite's first benchmark)")
    show.add_argument("--tracking-uri", default=None,
                      help="show the job runs of this tracking store (local sweeps, single runs) instead of a "
                           "SLURM sweep; also used when no SLURM sweep exists under --root (default then: "
                           "$MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
    show.add_argument("--experiment", default=naming.DEFAULT_EXPERIMENT, help="with --tracking-uri")
    args = parser.parse_args(argv)
    record, no_manifest = None, None
    if args.tracking_uri is None:
        try:
            record = manifest.find(args.root, args.sweep)
        except FileNotFoundError as err:  # local sweeps and single runs leave no manifest: their store
            no_manifest, args.tracking_uri = err, tracking.resolve_uri(None)
    if record is None:
        missing = _missing_store(args.tracking_uri)
        if missing:
            print(f"error: {no_manifest}; and {missing}" if no_manifest else f"error: {missing}", file=sys.stderr)
            return 2
        try:
            table, metric = status.store_rows(args.tracking_uri, args.experiment, args.sweep, args.metric)
        except ValueError as err:  # credentials not in the environment, or no such experiment
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(status.render_store(args.tracking_uri, args.experiment, table, metric, args.sweep))
        return 0
    try:
        table, metric, aligns = status.rows(record, args.metric)
    except ValueError as err:  # a tracking URI recorded without its credentials, not in the environment
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(status.render(record, table, metric, aligns))
    return 0


def _missing_store(uri: str) -> str | None:
    """Why a sqlite store is not there (reading it would create an empty one), or None."""
    database = tracking.sqlite_file(uri)
    if database is not None and not database.is_file():
        return (f"no tracking store at {redact_uri(uri)} "
                "(give --tracking-uri, or run from the folder that has mlflow.db)")
    return None


if __name__ == "__main__":
    sys.exit(main())
