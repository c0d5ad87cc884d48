"""With the instrumentation on, each migration applied is a ``db.migration.apply`` span
(version, name, direction, statement count) with its statements as children; a failure
records no value."""

from __future__ import annotations

from pathlib import Path

import pytest
from migration_files import three_migrations, write_migration
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from data_bridge_core import Engine
from data_bridge_core.migrations import MigrationFailedError, Migrator
from exported_text import everything_exported
from finished_spans import attrs, child_of, named

pytestmark = pytest.mark.usefixtures("instrumented")


async def test_each_migration_is_a_span_with_its_statements_as_children(
    migration_engine: Engine, directory: Path, spans: InMemorySpanExporter
) -> None:
    three_migrations(directory)
    await Migrator(migration_engine, directory).migrate()
    await Migrator(migration_engine, directory).migrate(to="0002")
    applied = named(spans, "db.migration.apply")
    assert [
        (
            a["db.migration.version"],
            a["db.migration.name"],
            a["db.migration.direction"],
            a["db.migration.statement_count"],
        )
        for a in map(attrs, applied)
    ] == [
        ("0001", "log", "upgrade", 1),
        ("0002", "entry", "upgrade", 2),
        ("0003", "entry", "upgrade", 2),
        ("0003", "entry", "downgrade", 1),
    ]
    assert all(s.kind is SpanKind.INTERNAL for s in applied)
    first = attrs(applied[0])
    assert "postgresql" in (first.get("db.system"), first.get("db.system.name"))  # semconv mode
    assert first["db.namespace"] == "test" or first.get("server.address")
    statements = named(spans, "db.query.execute")
    for migration in applied:
        children = [s for s in statements if child_of(s, migration)]
        assert len(children) == attrs(migration)["db.migration.statement_count"]
    children = [s for s in statements if child_of(s, applied[1])]
    assert [attrs(s)["db.operation.name"] for s in children] == ["SELECT", "INSERT"]


async def test_a_failed_migration_span_records_the_error_without_values(
    migration_engine: Engine,
    directory: Path,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_migration(
        directory,
        "0001_table",
        'op.execute("CREATE TABLE secrets (code text CONSTRAINT code_short '
        'CHECK (length(code) < 5))"),',
    )
    write_migration(
        directory, "0002_bad", "op.execute(\"INSERT INTO secrets VALUES ('hunter2-value')\"),"
    )
    with pytest.raises(MigrationFailedError, match="hunter2-value"):  # the caller sees it all
        await Migrator(migration_engine, directory).migrate()
    failed = named(spans, "db.migration.apply")[-1]
    assert attrs(failed)["db.migration.version"] == "0002"
    assert failed.status.status_code is StatusCode.ERROR
    # the driver's class behind the migration's error, as on every span
    assert attrs(failed)["error.type"] == "psycopg.errors.CheckViolation"
    assert attrs(failed)["db.response.status_code"] == "23514"
    assert attrs(failed)["db.error.constraint_name"] == "code_short"
    assert "hunter2" not in everything_exported(spans, metric_reader, caplog)
