"""The ``efs-sqlite`` console script.

Each subcommand imports what it needs when it runs, so ``efs-sqlite --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from efs_sqlite import __version__


def _cmd_stats(args: argparse.Namespace) -> int:
    import json

    from efs_sqlite.store import ShardStore

    with ShardStore(args.root) as store:
        report = store.stats(integrity=not args.quick)
    print(json.dumps(report, indent=2))
    return 0 if all(s.get("integrity", "ok") == "ok" for s in report["shards"].values()) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="efs-sqlite",
        description="A graph store of SQLite shards (one file per field) for Amazon EFS and AWS Lambda.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("stats", help="rows and bytes per shard, with an integrity check")
    p.add_argument("--root", required=True, help="the store's root folder")
    p.add_argument("--quick", action="store_true", help="skip PRAGMA integrity_check")
    p.set_defaults(func=_cmd_stats)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        # Bad input is the user's to fix: say what is wrong, without a traceback.
        print(f"efs-sqlite: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
