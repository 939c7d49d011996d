"""`python -m launchers status [--sweep ID] [--root DIR] [--metric NAME]`."""

from __future__ import annotations

import argparse
import sys

from launchers import manifest, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launchers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("status", help="one row per job of a sweep submitted with hydra/launcher=slurm")
    show.add_argument("--sweep", default=None, help="sweep id (its multirun folder name); default: the latest")
    show.add_argument("--root", default=".vlm_sweeps", help="paths.root of the sweep (default: .vlm_sweeps)")
    show.add_argument("--metric", default=None,
                      help="metric column (default: headline metric of the suite's first benchmark)")
    args = parser.parse_args(argv)
    try:
        record = manifest.find(args.root, args.sweep)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table, metric, aligns = status.rows(record, args.metric)
    print(status.render(record, table, metric, aligns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
