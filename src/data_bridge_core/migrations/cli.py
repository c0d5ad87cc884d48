"""``data-bridge``: the migrations command line (Django's command names, Alembic's ``check``).

    data-bridge makemigrations -m "add bio to users" --models app.models
    data-bridge migrate [--to VERSION | --to zero] [--sql]
    data-bridge migrations check --models app.models
    data-bridge migrations list

The database comes from ``--dsn`` or ``DATA_BRIDGE_DSN``; ``--schema`` sets the
connection's ``search_path`` (migrations work in its first schema). Exit
status: 0 done (or nothing to do), 1 a failure or (``check``) a difference,
2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from data_bridge_core.engine import Engine
from data_bridge_core.errors import DataBridgeError
from data_bridge_core.migrations.history import APPLIED
from data_bridge_core.migrations.runner import Migrator
from data_bridge_core.schema.table import Table

DSN_VARIABLE = "DATA_BRIDGE_DSN"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help=f"the database (default: ${DSN_VARIABLE})")
    parser.add_argument("--schema", help="the schema to migrate (sets search_path)")
    parser.add_argument(
        "--dir",
        "--directory",
        dest="directory",
        default="migrations",
        help="the migrations directory (default: migrations)",
    )


def _models_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--models",
        action="append",
        required=required,
        metavar="MODULE",
        help="module whose Table classes are the models (repeatable), e.g. app.models",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="data-bridge", description="Migrations for data-bridge models (docs/migrations.md)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    make = commands.add_parser(
        "makemigrations", help="write the next migration from the models' differences"
    )
    _common(make)
    _models_option(make, required=False)
    make.add_argument("-m", "--message", required=True, help="what the migration does")
    make.add_argument("--empty", action="store_true", help="no operations: write them yourself")

    migrate = commands.add_parser("migrate", help="apply pending migrations (or go --to one)")
    _common(migrate)
    migrate.add_argument("--to", metavar="VERSION", help="target version ('zero': unapply all)")
    migrate.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    migrate.add_argument(
        "--fake",
        action="store_true",
        help="record the migrations as applied (or unapplied) without running them",
    )

    group = commands.add_parser("migrations", help="new, check, list")
    sub = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = sub.add_parser("new", help="same as makemigrations")
    _common(new)
    _models_option(new, required=False)
    new.add_argument("-m", "--message", required=True, help="what the migration does")
    new.add_argument("--empty", action="store_true", help="no operations: write them yourself")
    check = sub.add_parser(
        "check", help="exit 1 when migrations are pending or the models differ from the schema"
    )
    _common(check)
    _models_option(check)
    listing = sub.add_parser("list", help="each migration, applied or not")
    _common(listing)
    return parser


def load_models(modules: Sequence[str]) -> list[type[Table]]:
    """The non-abstract Table classes of the named modules (the current directory importable)."""
    if os.getcwd() not in sys.path:  # as `python -m` does: the project's modules import
        sys.path.insert(0, os.getcwd())
    models: dict[type[Table], None] = {}
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Table)
                and not value.__dict__.get("__abstract__", False)
            ):
                models[value] = None
    if not models:
        raise DataBridgeError(f"no model (Table subclass) found in {', '.join(modules)}")
    return list(models)


def _engine(args: argparse.Namespace) -> Engine:
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    if not dsn:
        raise _UsageError(f"no database: pass --dsn or set {DSN_VARIABLE}")
    extra: dict[str, Any] = {}
    if args.schema:
        extra["options"] = f"-c search_path={args.schema}"
    # Never prepared: migrations are not a hot path, and PgBouncer's transaction mode
    # cannot keep prepared statements.
    return Engine(dsn, min_size=0, max_size=2, prepare_threshold=None, **extra)


class _UsageError(Exception):
    pass


async def run(
    argv: Sequence[str], stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run one command; the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        engine = _engine(args)
    except _UsageError as exc:
        print(f"data-bridge: {exc}", file=err)
        return 2
    try:
        migrator = Migrator(engine, args.directory)
        action = args.command if args.command != "migrations" else args.action
        if action in ("makemigrations", "new"):
            return await _make(migrator, args, out, err)
        if action == "migrate":
            return await _migrate(migrator, args, out)
        if action == "check":
            return await _check(migrator, args, out)
        return await _list(migrator, out)
    except DataBridgeError as exc:
        print(f"data-bridge: {exc}", file=err)
        return 1
    finally:
        await engine.dispose()


async def _make(migrator: Migrator, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.empty and not args.models:
        print("data-bridge: --models MODULE is required (or --empty)", file=err)
        return 2
    models = [] if args.empty else load_models(args.models)
    generated = await migrator.make(models, args.message, empty=args.empty)
    if generated is None:
        print("No changes detected", file=out)
        return 0
    print(f"Created {generated.path}", file=out)
    for op in generated.operations:
        print(f"  - {op.describe()}", file=out)
    for hazard in generated.hazards:
        print(f"HAZARD: {hazard}", file=err)
    for note in generated.review:
        print(f"REVIEW: {note}", file=err)
    if generated.review:
        print(
            f"REVIEW: edit {generated.path}, then delete its REVIEW lines (migrate refuses it "
            "until then)",
            file=err,
        )
    return 0


async def _migrate(migrator: Migrator, args: argparse.Namespace, out: TextIO) -> int:
    if args.sql:
        out.write(await migrator.sql(args.to))
        return 0
    steps = await migrator.migrate(args.to, fake=args.fake)
    if not steps:
        print("No migrations to apply.", file=out)
    for step in steps:
        verb = "Applied" if step.direction == "upgrade" else "Unapplied"
        fake = " (fake: recorded, not run)" if args.fake else ""
        print(f"{verb} {step.migration.label}{fake}", file=out)
    return 0


async def _check(migrator: Migrator, args: argparse.Namespace, out: TextIO) -> int:
    result = await migrator.check(load_models(args.models))
    for step in result.pending:
        print(f"not applied: {step}", file=out)
    for op in result.operations:
        print(f"models differ: {op.describe()}", file=out)
    if result.clean:
        print("The database is migrated and matches the models.", file=out)
        return 0
    if result.operations:
        print("Run `data-bridge makemigrations` for the model changes.", file=out)
    return 1


async def _list(migrator: Migrator, out: TextIO) -> int:
    rows = await migrator.status()
    if not rows:
        print(f"no migrations in {migrator.directory}", file=out)
    for migration, row in rows:
        mark = "[X]" if row is not None and row.state == APPLIED else "[ ]"
        note = f" ({row.state})" if row is not None and row.state != APPLIED else ""
        print(f"{mark} {migration.label}{note}", file=out)
    return 0


def main() -> None:
    """The ``data-bridge`` console script."""
    sys.exit(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
