"""Applying migrations against the real server: exactly once under concurrency, a failure
leaves the previous version, edited files are refused, `--sql` shows what runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from catalog_snapshot import history, run_sql, snapshot
from core_fixtures import PGBOUNCER_DSN, Comment, Post, User
from migration_files import engine_for, three_migrations, write_migration

from data_bridge_core import Engine, Session
from data_bridge_core.migrations import (
    EditedMigrationError,
    MigrationError,
    MigrationFailedError,
    Migrator,
)
from scratch_schema import fresh_schema


async def test_two_migrators_at_once_apply_each_migration_exactly_once(
    schema: str, directory: Path
) -> None:
    three_migrations(directory)
    first, second = engine_for(schema), engine_for(schema)
    try:
        async with asyncio.timeout(60):
            results = await asyncio.gather(
                Migrator(first, directory).migrate(), Migrator(second, directory).migrate()
            )
    finally:
        await first.dispose()
        await second.dispose()
    ran = sorted(str(step) for steps in results for step in steps)
    assert ran == ["0001_log (upgrade)", "0002_entry (upgrade)", "0003_entry (upgrade)"]
    assert await run_sql(schema, "SELECT version FROM applied_log ORDER BY version") == [
        ("0002",),
        ("0003",),
    ]
    assert await history(schema) == [("0001", "applied"), ("0002", "applied"), ("0003", "applied")]


async def test_migrate_when_up_to_date_does_nothing(
    migration_engine: Engine, directory: Path
) -> None:
    three_migrations(directory)
    assert len(await Migrator(migration_engine, directory).migrate()) == 3
    assert await Migrator(migration_engine, directory).migrate() == []


async def test_a_failing_migration_leaves_the_previous_version_and_names_the_statement(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    write_migration(directory, "0001_base", 'op.execute("CREATE TABLE base (id int)"),')
    write_migration(
        directory,
        "0002_broken",
        """
        op.execute("CREATE TABLE half_done (id int)"),
        op.execute("ALTER TABLE missing_table ADD COLUMN x int"),
        """,
    )
    with pytest.raises(MigrationFailedError) as caught:
        await Migrator(migration_engine, directory).migrate()
    message = str(caught.value)
    assert message.startswith(
        "migration 0002_broken (upgrade) failed at statement 2: "
        "ALTER TABLE missing_table ADD COLUMN x int\n"
    )
    assert 'relation "missing_table" does not exist' in message
    assert "the database stays at the version before 0002" in message
    assert (caught.value.version, caught.value.index) == ("0002", 2)
    assert await history(schema) == [("0001", "applied")]
    tables = (await snapshot(schema))["tables"]
    assert tables == [("base",)]  # half_done was rolled back with its migration


async def test_an_applied_migration_edited_since_is_refused(
    migration_engine: Engine, directory: Path
) -> None:
    path = write_migration(directory, "0001_base", 'op.execute("CREATE TABLE base (id int)"),')
    await Migrator(migration_engine, directory).migrate()
    write_migration(directory, "0002_next", 'op.execute("CREATE TABLE next (id int)"),')
    assert [str(s) for s in await Migrator(migration_engine, directory).migrate()] == [
        "0002_next (upgrade)"
    ]
    path.write_text(path.read_text().replace("(id int)", "(id bigint)"))
    with pytest.raises(EditedMigrationError, match="migration 0001_base was edited after it"):
        await Migrator(migration_engine, directory).migrate()
    with pytest.raises(EditedMigrationError):
        await Migrator(migration_engine, directory).status()


async def test_migrate_to_a_version_and_to_zero_run_the_downgrades_in_reverse_order(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    three_migrations(directory)
    await Migrator(migration_engine, directory).migrate()
    steps = await Migrator(migration_engine, directory).migrate(to="0001")
    assert [str(s) for s in steps] == ["0003_entry (downgrade)", "0002_entry (downgrade)"]
    assert await history(schema) == [("0001", "applied")]
    steps = await Migrator(migration_engine, directory).migrate(to="zero")
    assert [str(s) for s in steps] == ["0001_log (downgrade)"]
    assert (await snapshot(schema))["tables"] == []
    with pytest.raises(MigrationError, match=r"no migration has version '0007'"):
        await Migrator(migration_engine, directory).migrate(to="0007")


async def test_engine_migrate_applies_a_directory(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    three_migrations(directory)
    steps = await migration_engine.migrate(directory)
    assert [str(s) for s in steps][-1] == "0003_entry (upgrade)"
    assert len(await history(schema)) == 3


async def test_a_data_migration_runs_in_the_migrations_transaction(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    write_migration(
        directory,
        "0001_people",
        """
        op.execute("CREATE TABLE people (name text, greeting text)"),
        op.execute("INSERT INTO people (name) VALUES ('ada'), ('bob')"),
        op.run(greet),
        """,
        header="""

        async def greet(session):
            await session.execute("UPDATE people SET greeting = 'hello ' || name")
        """,
    )
    write_migration(
        directory,
        "0002_broken_data",
        "op.run(fail),",
        header="""

        async def fail(session):
            await session.execute("UPDATE people SET greeting = 'changed'")
            await session.execute("SELECT 1 / 0")
        """,
    )
    with pytest.raises(MigrationFailedError, match=r"0002_broken_data \(upgrade\) failed"):
        await Migrator(migration_engine, directory).migrate()
    rows = await run_sql(schema, "SELECT name, greeting FROM people ORDER BY name")
    assert rows == [("ada", "hello ada"), ("bob", "hello bob")]


async def test_a_data_migration_is_a_step_of_its_own_in_the_failure_numbering(
    migration_engine: Engine, directory: Path
) -> None:
    write_migration(
        directory,
        "0001_steps",
        """
        op.execute("CREATE TABLE steps (n int)"),
        op.run(noop),
        op.execute("INSERT INTO steps VALUES ('not a number')"),
        """,
        header="""

        async def noop(session):
            pass
        """,
    )
    with pytest.raises(MigrationFailedError) as caught:
        await Migrator(migration_engine, directory).migrate()
    # step 1 the CREATE, step 2 the data migration, step 3 the failing INSERT
    assert caught.value.index == 3
    assert "failed at statement 3: INSERT INTO steps" in str(caught.value)


async def test_a_migration_not_returning_operations_gets_a_clear_error(
    migration_engine: Engine, directory: Path
) -> None:
    write_migration(directory, "0001_bad", "")
    bad = directory / "0001_bad.py"
    bad.write_text("def upgrade():\n    return 'DROP TABLE x'\n")
    with pytest.raises(MigrationError, match=r"upgrade\(\) of migration 0001_bad must return"):
        await Migrator(migration_engine, directory).migrate()


async def test_history_naming_a_missing_file_is_refused(
    migration_engine: Engine, directory: Path, tmp_path: Path
) -> None:
    three_migrations(directory)
    await Migrator(migration_engine, directory).migrate()
    other = tmp_path / "other"
    write_migration(other, "0001_log", 'op.execute("SELECT 1"),')
    with pytest.raises(MigrationError, match="has migration 0002_entry applied, but"):
        await Migrator(migration_engine, other).migrate()


async def test_duplicate_versions_are_refused(migration_engine: Engine, directory: Path) -> None:
    write_migration(directory, "0001_a", 'op.execute("SELECT 1"),')
    write_migration(directory, "0001_b", 'op.execute("SELECT 1"),')
    with pytest.raises(MigrationError, match="two migrations have version 0001"):
        await Migrator(migration_engine, directory).migrate()


# -- non-transactional operations --------------------------------------------------------


async def test_create_index_concurrently_runs_in_a_non_transactional_migration(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    write_migration(directory, "0001_table", 'op.execute("CREATE TABLE t (a int, b int)"),')
    write_migration(
        directory,
        "0002_index",
        'op.create_index("t", "ix_t_a_b", ["a", "b"], concurrently=True),',
        'op.drop_index("t", "ix_t_a_b", ["a", "b"], concurrently=True),',
        header="\ntransactional = False\n",
    )
    script = await Migrator(migration_engine, directory).sql()
    assert (
        "-- 0002_index (upgrade)\n"
        "-- transactional = False: each statement commits on its own\n"
        'CREATE INDEX CONCURRENTLY "ix_t_a_b" ON "t" ("a", "b");\n'
    ) in script
    await Migrator(migration_engine, directory).migrate()
    valid = await run_sql(
        schema, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_t_a_b'::regclass"
    )
    assert valid == [(True,)]
    assert await history(schema) == [("0001", "applied"), ("0002", "applied")]
    await Migrator(migration_engine, directory).migrate(to="0001")
    assert (await snapshot(schema))["indexes"] == []
    assert await history(schema) == [("0001", "applied")]


async def test_a_concurrent_index_in_a_transactional_migration_is_refused(
    migration_engine: Engine, directory: Path
) -> None:
    write_migration(directory, "0001_table", 'op.execute("CREATE TABLE t (a int)"),')
    write_migration(
        directory, "0002_index", 'op.create_index("t", "ix_t_a", ["a"], concurrently=True),'
    )
    with pytest.raises(MigrationError, match="cannot run inside a transaction; put it in a"):
        await Migrator(migration_engine, directory).migrate()


async def test_a_failing_non_transactional_migration_is_not_recorded(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    write_migration(directory, "0001_table", 'op.execute("CREATE TABLE t (a int)"),')
    write_migration(
        directory,
        "0002_index",
        """
        op.create_index("t", "ix_t_a", ["a"], concurrently=True),
        op.create_index("t", "ix_t_b", ["b"], concurrently=True),
        """,
        header="\ntransactional = False\n",
    )
    with pytest.raises(MigrationFailedError) as caught:
        await Migrator(migration_engine, directory).migrate()
    assert "statements 1 to 1 of this non-transactional migration stay applied" in str(caught.value)
    assert await history(schema) == [("0001", "applied")]


# -- --sql -----------------------------------------------------------------------------------


async def test_sql_prints_what_migrate_runs(
    migration_engine: Engine, schema: str, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_migrations(directory)
    write_migration(
        directory,
        "0004_table",
        """
        op.create_table("things", [op.column("id", "bigint", identity=True),
                                   op.column("label", "text", nullable=False, default="'x'::text")],
                        primary_key=op.key("things_pkey", ["id"])),
        op.create_index("things", "ix_things_label", ["label"]),
        """,
    )
    script = await Migrator(migration_engine, directory).sql()
    sent: list[str] = []
    original = Session.execute

    async def logged(session: Session, statement: str, params: object = None) -> object:
        sent.append(statement)
        return await original(session, statement, params)  # type: ignore[arg-type]

    monkeypatch.setattr(Session, "execute", logged)
    await Migrator(migration_engine, directory).migrate()
    monkeypatch.undo()
    skipped = ("SELECT version, name", "SELECT to_regclass", "SELECT pg_advisory_xact_lock")
    ran = [s for s in sent if not s.startswith(skipped) and "data_bridge_migrations" not in s]
    lines = [line for line in script.splitlines() if not line.startswith("--")]
    printed = [
        s.strip()
        for s in "\n".join(lines).split(";\n")
        if s.strip() not in ("", "BEGIN", "COMMIT")
        and not s.strip().startswith(skipped)
        and "data_bridge_migrations" not in s
    ]
    assert len(printed) == 7
    assert ran == printed
    # Running the printed script in another schema gives the same schema and history.
    async with fresh_schema("dbt") as other:
        await run_sql(other, script)
        assert (await snapshot(other))["columns"] == (await snapshot(schema))["columns"]
        assert await history(other) == await history(schema)


# -- adopting a database, data migrations, another process's running mark ----------------


async def test_fake_records_the_migrations_of_a_database_made_by_create_all(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    generated = await Migrator(migration_engine, directory).make([User, Post, Comment], "initial")
    assert generated is not None
    await Migrator(migration_engine, directory).migrate(to="zero")  # history table only
    await migration_engine.create_all(User, Post, Comment)  # the database before migrations
    steps = await Migrator(migration_engine, directory).migrate(fake=True)
    assert [str(s) for s in steps] == ["0001_initial (upgrade)"]
    assert await history(schema) == [("0001", "applied")]
    assert (await Migrator(migration_engine, directory).check([User, Post, Comment])).clean


async def test_an_empty_migration_is_a_template_that_applies(
    migration_engine: Engine, directory: Path
) -> None:
    generated = await Migrator(migration_engine, directory).make([], "backfill", empty=True)
    assert generated is not None and generated.path.name == "0001_backfill.py"
    assert "# op.run(backfill)" in generated.path.read_text()
    steps = await Migrator(migration_engine, directory).migrate()
    assert [str(s) for s in steps] == ["0001_backfill (upgrade)"]


async def test_a_migration_marked_running_by_another_process_is_waited_for_then_reported(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    three_migrations(directory)
    await Migrator(migration_engine, directory).migrate(to="0001")
    await run_sql(
        schema,
        "INSERT INTO data_bridge_migrations (version, name, checksum, state) "
        "VALUES ('0002', 'entry', 'x', 'running')",
    )
    migrator = Migrator(migration_engine, directory, wait_timeout=0.2)
    async with asyncio.timeout(30):
        with pytest.raises(MigrationError, match="0002_entry has been marked running"):
            await migrator.migrate()
    await run_sql(schema, "DELETE FROM data_bridge_migrations WHERE state = 'running'")
    steps = await Migrator(migration_engine, directory).migrate()
    assert [str(s) for s in steps] == ["0002_entry (upgrade)", "0003_entry (upgrade)"]


async def test_a_missing_directory_is_an_error_not_up_to_date(
    migration_engine: Engine, tmp_path: Path
) -> None:
    with pytest.raises(MigrationError, match=r"no migrations directory .*nowhere"):
        await Migrator(migration_engine, tmp_path / "nowhere").migrate()


async def test_execute_sends_a_percent_sign_as_written_and_params_as_parameters(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    write_migration(
        directory,
        "0001_rates",
        """
        op.execute("CREATE TABLE rates (label text DEFAULT '100%', value int)"),
        op.execute("INSERT INTO rates (label, value) VALUES ('50%', 1)"),
        op.execute("INSERT INTO rates (label, value) VALUES (%s, %s)", ["given", 2]),
        """,
    )
    await Migrator(migration_engine, directory).migrate()
    rows = await run_sql(schema, "SELECT label, value FROM rates ORDER BY value")
    assert rows == [("50%", 1), ("given", 2)]
    async with fresh_schema("dbt", owned_by_role=bool(PGBOUNCER_DSN)) as other:
        other_engine = engine_for(other)
        try:
            script = await Migrator(other_engine, directory).sql()
        finally:
            await other_engine.dispose()
        assert "INSERT INTO rates (label, value) VALUES ('given', 2);" in script
        await run_sql(other, script)
        assert await run_sql(other, "SELECT label, value FROM rates ORDER BY value") == rows
