"""The ``db.migration.apply`` span: one per migration applied or unapplied.

Patched on ``Migrator.apply_migration`` (data_bridge_core.migrations.runner),
which runs one migration's operations in its transaction. The span is
INTERNAL, a child of the caller's span, with the migration's version, name,
direction and statement count at start (samplers see them); its statements
go through ``Session.execute`` and are its ``db.query.execute`` children, under
the rules of every statement span (the SQL only with statement capture on).
A failure records the error as every span does: class, SQLSTATE and names,
never a value (`error_description`; the migration error quotes the database
error as ``original``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_data_bridge import config
from opentelemetry_instrumentation_data_bridge.spans import SpanScope
from opentelemetry_instrumentation_data_bridge.wrappers import server_attributes

SPAN_NAME = "db.migration.apply"
DB_MIGRATION_VERSION = "db.migration.version"
DB_MIGRATION_NAME = "db.migration.name"
DB_MIGRATION_DIRECTION = "db.migration.direction"
DB_MIGRATION_STATEMENT_COUNT = "db.migration.statement_count"

Wrapped = Callable[..., Awaitable[Any]]


def _migration_scope(migrator: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanScope:
    names = ("session", "migration", "direction")
    given = dict(zip(names, args, strict=False)) | kwargs
    migration, direction = given["migration"], given["direction"]
    attributes = {
        **config.state.system_attributes,
        **server_attributes(migrator.engine),
        DB_MIGRATION_VERSION: str(migration.version),
        DB_MIGRATION_NAME: str(migration.name),
        DB_MIGRATION_DIRECTION: str(direction),
        DB_MIGRATION_STATEMENT_COUNT: len(migration.statements(direction)),
    }
    return SpanScope(config.tracer(), SPAN_NAME, SpanKind.INTERNAL, attributes)


def apply_migration_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Awaitable[Any]:
    """``Migrator.apply_migration(session, migration, direction)`` as ``db.migration.apply``."""
    if config.instrumentation_suppressed(otel_context.get_current()):
        return wrapped(*args, **kwargs)
    return _traced(wrapped, instance, args, kwargs)


async def _traced(
    wrapped: Wrapped, migrator: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        scope = _migration_scope(migrator, args, kwargs)
    except Exception as exc:  # our bug must not become the user's: run untraced
        config.report_failure(f"describe {SPAN_NAME}", exc)
        return await wrapped(*args, **kwargs)
    with scope:
        return await wrapped(*args, **kwargs)
