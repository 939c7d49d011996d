"""`python -m launchers status [--sweep ID] [--root DIR] [--metric NAME]`."""

from __future__ import annotations

import argparse
import sys

from vlm_sweeps import naming, tracking

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
    record = None
    if args.tracking_uri is None:
        try:
            record = manifest.find(args.root, args.sweep)
        except FileNotFoundError as err:
            fallback = tracking.resolve_uri(None)
            database = tracking.sqlite_file(fallback)
            if database is not None and not database.is_file():
                print(f"error: {err}; and no tracking store at {fallback} (give --tracking-uri)", file=sys.stderr)
                return 2
            args.tracking_uri = fallback
    if record is None:
        table, metric = status.store_rows(args.tracking_uri, args.experiment, args.sweep, args.metric)
        print(status.render_store(args.tracking_uri, args.experiment, table, metric))
        return 0
    try:
        table, metric, aligns = status.rows(record, args.metric)
    except ValueError as err:  # a tracking URI recorded without its credentials, not in the environment
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(status.render(record, table, metric, aligns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
