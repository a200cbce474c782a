"""The ``efs-sqlite`` console script.

Each subcommand imports what it needs when it runs, so ``efs-sqlite --help`` stays instant.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from efs_sqlite import __version__

# -- the store: --backend efs (--root) or dynamodb (--table, --endpoint-url, --region) ----------


def _open_store(args: argparse.Namespace, *, create: bool) -> Any:
    """The store the arguments name; a ``ValueError`` saying what is missing or unreachable."""
    if args.backend == "efs":
        if not args.root:
            raise ValueError("--backend efs needs --root, the store's root folder")
        from efs_sqlite.store import ShardStore

        return ShardStore(args.root, create=create)
    if not args.table:
        raise ValueError("--backend dynamodb needs --table NAME")
    from botocore.exceptions import BotoCoreError, ClientError

    from efs_sqlite.dynamodb import DynamoStore
    from efs_sqlite.errors import StoreError

    try:
        store = DynamoStore(
            args.table, endpoint_url=args.endpoint_url, region_name=args.region, create=create
        )
        if not create and not store.table_exists():
            raise StoreError(f"DynamoDB table {args.table!r} does not exist (load a data set into it first)")
    except (StoreError, BotoCoreError, ClientError) as exc:
        raise ValueError(str(exc)) from exc
    return store


def _store_arguments(p: argparse.ArgumentParser, root_help: str) -> None:
    p.add_argument("--backend", choices=["efs", "dynamodb"], default="efs", help="the store (default: efs)")
    p.add_argument("--root", help=f"{root_help} (--backend efs)")
    p.add_argument("--table", help="the DynamoDB table (--backend dynamodb)")
    p.add_argument(
        "--endpoint-url", help="a DynamoDB endpoint instead of AWS's, e.g. a moto server (--backend dynamodb)"
    )
    p.add_argument("--region", help="the AWS region (--backend dynamodb; default: the session's)")
    p.add_argument(
        "--consistent-reads",
        action="store_true",
        help="strongly consistent reads, at twice the read units (--backend dynamodb)",
    )


def _cmd_stats(args: argparse.Namespace) -> int:
    import json

    with _open_store(args, create=False) as store:
        report = store.stats(integrity=not args.quick)
    print(json.dumps(report, indent=2))
    return 0 if all(s.get("integrity", "ok") == "ok" for s in report["shards"].values()) else 1


# -- GraphQL: serve, schema (efs_sqlite.app, efs_sqlite.graphql) ------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from efs_sqlite.app import create_app

    with _open_store(args, create=False) as store:
        # On DynamoDB, a request with the header x-efs-ops: 1 gets its calls and capacity units.
        accounting = getattr(store, "accounting", None)
        app = create_app(store, accounting=accounting)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from efs_sqlite.graphql import schema_sdl

    print(schema_sdl(), end="")
    return 0


# -- data sets: generate, load (efs_sqlite.data, efs_sqlite.loader) ---------------------------


def _cmd_generate(args: argparse.Namespace) -> int:
    from efs_sqlite.data import generate_dataset

    try:
        manifest = generate_dataset(
            args.out, args.scale, args.seed, overwrite=args.force, progress=not args.no_progress
        )
    except FileExistsError as exc:
        print(f"efs-sqlite: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.out}: {manifest['records']:,} records ({manifest['rows']:,} rows) in "
        f"{len(manifest['parts'])} part(s); nodes {manifest['types']}"
    )
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    import json

    from efs_sqlite.errors import DataSetError
    from efs_sqlite.loader import LoadError, load_path

    with _open_store(args, create=True) as store:
        try:
            batch = {"batch": args.batch} if args.batch else {}
            summary = load_path(
                store, args.path, threads=args.threads, progress=not args.no_progress, **batch
            )
        except (LoadError, DataSetError) as exc:
            print(f"efs-sqlite: load stopped: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(summary.as_dict(), indent=2))
    return 0


# -- AWS: build, deploy, teardown, query (efs_sqlite.aws) ------------------------------------


def _aws_command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """AWS and build failures become a one-line error and exit status 1."""

    @functools.wraps(run)
    def command(args: argparse.Namespace) -> int:
        import logging

        from botocore.exceptions import BotoCoreError, ClientError

        from efs_sqlite.aws import AwsError
        from efs_sqlite.errors import LockQuotaExceeded

        # Deploys take minutes: show each step on stderr while the command runs.
        progress, handler = logging.getLogger("efs_sqlite"), logging.StreamHandler(sys.stderr)
        level = progress.level
        progress.addHandler(handler)
        progress.setLevel(logging.INFO)
        try:
            return run(args)
        except (AwsError, BotoCoreError, ClientError, LookupError, LockQuotaExceeded) as exc:
            print(f"efs-sqlite: error: {exc}", file=sys.stderr)
            return 1
        finally:
            progress.removeHandler(handler)
            progress.setLevel(level)

    return command


def _stack_config(args: argparse.Namespace) -> Any:
    from efs_sqlite.aws import StackConfig

    options = {
        "region": args.region,
        "throughput_mode": getattr(args, "throughput_mode", None),
        "provisioned_mibps": getattr(args, "provisioned_mibps", None),
        "arch": getattr(args, "arch", None),
        "memory_mb": getattr(args, "memory", None),
        "timeout_s": getattr(args, "timeout", None),
        "reserved_concurrency": getattr(args, "reserved_concurrency", None),
        "subnet_ids": tuple(getattr(args, "subnet_ids", None) or ()) or None,
        "public": getattr(args, "public", False) or None,
        "backend": getattr(args, "backend", None),
    }
    return StackConfig(args.stack, **{k: v for k, v in options.items() if v is not None})


@_aws_command
def _cmd_build(args: argparse.Namespace) -> int:
    from efs_sqlite import aws

    build = aws.build_zip(
        args.out, arch=args.arch, python_version=args.python_version, project_root=args.project_root
    )
    print(f"{build.path}  {build.size / 2**20:.1f} MB ({build.unzipped_size / 2**20:.1f} MB unzipped)")
    print(f"sha256 {build.sha256}  {len(build.files)} files  handlers: {sorted(build.handlers)}")
    if args.verify:
        verification = aws.verify_zip(build)
        if verification.skipped:
            print(f"import check skipped: {verification.skipped}")
        else:
            print(f"handlers import from the unpacked zip under {verification.python}")
    return 0


@_aws_command
def _cmd_deploy(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from efs_sqlite import aws

    config = _stack_config(args)
    table = None
    if config.backend == "dynamodb":
        from efs_sqlite.dynamodb.layout import table_definition

        table = table_definition(config.table_name)
    if args.dry_run:
        aws.deploy(config, dry_run=True, table=table)
        return 0
    stack = aws.deploy(config, table=table)
    print(json.dumps({**dataclasses.asdict(stack), "graphql_url": stack.graphql_url}, indent=2))
    return 0


@_aws_command
def _cmd_teardown(args: argparse.Namespace) -> int:
    from efs_sqlite import aws

    calls = aws.teardown(_stack_config(args))
    print(f"stack {args.stack}: {len(calls)} calls, nothing tagged with it is left")
    return 0


@_aws_command
def _cmd_query(args: argparse.Namespace) -> int:
    import json

    from efs_sqlite import aws

    stack = aws.find_stack(_stack_config(args))
    variables = json.loads(args.variables) if args.variables else None
    answer = aws.signed_query(stack.graphql_url, args.query, variables, region=stack.region)
    print(json.dumps(answer, indent=2))
    return 1 if answer.get("errors") else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="efs-sqlite",
        description="A graph store of SQLite shards (one file per field) for Amazon EFS and AWS Lambda.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("stats", help="rows and bytes per shard, with an integrity check")
    _store_arguments(p, "the store's root folder")
    p.add_argument("--quick", action="store_true", help="skip PRAGMA integrity_check")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("serve", help="serve the GraphQL API over HTTP (uvicorn)")
    _store_arguments(p, "the store's root folder (must exist)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("schema", help="print the GraphQL schema (SDL)")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("generate", help="write the seeded insurance data set (gzip'd JSON Lines + manifest)")
    p.add_argument("--scale", choices=["small", "default", "large"], default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the data set (must be empty)")
    p.add_argument("--force", action="store_true", help="replace a data set already in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("load", help="load a data set folder or a .jsonl(.gz) file into a store")
    _store_arguments(p, "the store's root folder")
    p.add_argument("path", help="a data set folder (with manifest.json) or a .jsonl / .jsonl.gz file")
    p.add_argument(
        "--threads",
        type=int,
        help="writer threads (default: 1 on local disk, one per shard on NFS/EFS and DynamoDB)",
    )
    p.add_argument("--batch", type=int, help="rows per commit (default: the loader's, 10000)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("build", help="build the Lambda zip (installed package, handlers, dependencies)")
    p.add_argument("--out", required=True, help="folder for the zip")
    p.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64")
    p.add_argument("--python-version", default="3.13", help="target CPython (Lambda runs 3.13)")
    p.add_argument("--verify", action="store_true", help="import the handlers from the unpacked zip")
    p.add_argument("--project-root", help="a source tree to build instead (default: the installed package)")
    p.set_defaults(func=_cmd_build)

    def stack_parser(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--stack", required=True, help="stack name (all its resources carry it as a tag)")
        p.add_argument("--region", help="AWS region (default: the session's)")
        return p

    p = stack_parser("deploy", "create or update a stack on AWS (idempotent)")
    p.add_argument(
        "--backend",
        choices=["efs", "dynamodb"],
        help="efs (default): a VPC, EFS and both functions; dynamodb: an on-demand table and the "
        "GraphQL function, no VPC nor EFS",
    )
    p.add_argument("--throughput-mode", choices=["bursting", "elastic", "provisioned"])
    p.add_argument("--provisioned-mibps", type=float, help="with --throughput-mode provisioned")
    p.add_argument("--arch", choices=["x86_64", "arm64"])
    p.add_argument("--memory", type=int, help="GraphQL function memory, MB")
    p.add_argument("--timeout", type=int, help="GraphQL function timeout, seconds")
    p.add_argument("--reserved-concurrency", type=int)
    p.add_argument("--subnet-ids", nargs="+", help="use these subnets instead of a new VPC")
    p.add_argument("--public", action="store_true", help="unauthenticated Function URL (warns)")
    p.add_argument("--dry-run", action="store_true", help="print the calls, call nothing")
    p.set_defaults(func=_cmd_deploy)

    p = stack_parser("teardown", "delete everything tagged with the stack's name")
    p.set_defaults(func=_cmd_teardown)

    p = stack_parser("query", "send a SigV4-signed GraphQL query to a deployed stack")
    p.add_argument("query", help="the GraphQL document")
    p.add_argument("--variables", help="variables as a JSON object")
    p.set_defaults(func=_cmd_query)

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
