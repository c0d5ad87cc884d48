"""`Migrator`: generate migrations from the models, apply them safely, check the schema.

Applying (`Migrator.migrate`) runs each migration in a transaction of its
own, which first takes ``pg_advisory_xact_lock`` on a key of the current
schema and then reads the history table: two deploys starting at once
queue on the lock, and the second finds the first one's migrations recorded
and skips them. A transaction-level lock (not a session-level one) is what
works through PgBouncer in transaction mode, where consecutive transactions
of one client may use different server connections. A failing statement
rolls the migration's transaction back: the database stays at the previous
version, and `MigrationFailedError` names the migration and the statement.

A migration with ``transactional = False`` (``CREATE INDEX CONCURRENTLY``)
is marked ``running`` in the history in one locked transaction, runs its
statements on an autocommit connection, and is marked applied in another.
Meanwhile another deploy waits for the mark to go (bounded by
``wait_timeout``).

Each migration applied goes through `Migrator.apply_migration`, the seam the
instrumentation traces as ``db.migration.apply``; its statements go through
``Session.execute``, so they are traced as the session's statements are.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data_bridge_core.engine import Engine, install_migrate_hook
from data_bridge_core.errors import DatabaseError
from data_bridge_core.migrations import history
from data_bridge_core.migrations.autogenerate import Generated, differences, write_migration
from data_bridge_core.migrations.errors import MigrationError, MigrationFailedError
from data_bridge_core.migrations.files import Migration, load_directory
from data_bridge_core.migrations.history import APPLIED, RUNNING, HistoryRow
from data_bridge_core.migrations.operations import Execute, Operation, RunPython
from data_bridge_core.migrations.plan import Step, plan, target
from data_bridge_core.migrations.script import script
from data_bridge_core.migrations.state import SchemaState
from data_bridge_core.schema.table import Table
from data_bridge_core.session import Session


@dataclass
class CheckResult:
    """What `Migrator.check` found: migrations not applied, and operations the models still need."""

    pending: list[Step] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.pending and not self.operations


class Migrator:
    """Migrations of one directory on one engine's database (its current schema).

    ``wait_timeout``: how long `migrate` waits for a non-transactional
    migration another process is running before giving up.
    """

    def __init__(
        self, engine: Engine, directory: str | os.PathLike[str], *, wait_timeout: float = 600.0
    ) -> None:
        self.engine = engine
        self.directory = Path(directory)
        self.wait_timeout = wait_timeout
        self._migrations: list[Migration] | None = None

    def migrations(self) -> list[Migration]:
        """The directory's migrations, by version (read once)."""
        if self._migrations is None:
            self._migrations = load_directory(self.directory)
        return self._migrations

    # -- history ------------------------------------------------------------------------

    async def history(self) -> dict[str, HistoryRow]:
        """The history table's rows by version (empty when the table does not exist)."""
        async with Session(self.engine) as session:
            return await history.read(session, check_exists=True)

    def plan(self, rows: dict[str, HistoryRow], to: str | None = None) -> list[Step]:
        """The steps from the recorded history ``rows`` to version ``to`` (see `plan.plan`)."""
        return plan(self.migrations(), rows, to, self.directory)

    def _require_directory(self) -> None:
        """A missing directory is a mistake (a wrong --dir or working directory), not "no
        migrations": say so rather than report the database up to date."""
        if not self.directory.is_dir():
            raise MigrationError(f"no migrations directory {self.directory} (see --dir)")

    # -- applying ------------------------------------------------------------------------

    async def migrate(self, to: str | None = None, *, fake: bool = False) -> list[Step]:
        """Apply (or unapply) migrations up to version ``to`` (None: the latest).

        Returns the steps this call ran (others may have been run meanwhile
        by another process). Raises `MigrationFailedError` when a statement
        fails (that migration is rolled back, the ones before stay),
        `EditedMigrationError` for an applied file edited since.
        ``fake``: record the steps in the history without running them (a
        database whose tables `create_all` made, adopted by migrations).
        """
        self._require_directory()
        target(self.migrations(), to, self.directory)  # fails before anything is locked
        async with Session(self.engine) as session:
            await history.lock(session)
            await history.ensure_table(session)
            await session.commit()
        done: list[Step] = []
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            outcome = await self._next(to, fake)
            if outcome is None:
                return done
            if isinstance(outcome, HistoryRow):  # another process runs a non-transactional one
                if deadline is None:
                    deadline = loop.time() + self.wait_timeout
                elif loop.time() > deadline:
                    raise MigrationError(
                        f"migration {outcome.version}_{outcome.name} has been marked running "
                        f"in {history.HISTORY_TABLE} for over {self.wait_timeout:g}s: another "
                        "process is applying it, or one was interrupted. When none is running, "
                        "inspect the schema, then delete that row and migrate again"
                    )
                await asyncio.sleep(0.5)
                continue
            deadline = None
            done.append(outcome)

    async def _next(self, to: str | None, fake: bool = False) -> Step | HistoryRow | None:
        """Apply the next step under the lock: the step, a running mark to wait for, or None."""
        async with Session(self.engine) as session:
            await history.lock(session)
            rows = await history.read(session)
            steps = self.plan(rows, to)
            running = [row for row in rows.values() if row.state != APPLIED]
            if running:
                return running[0]
            if not steps:
                return None
            step = steps[0]
            migration = step.migration
            if migration.needs_review:
                raise MigrationError(
                    f"migration {migration.label} still has a '# REVIEW:' line: read it, check "
                    f"the operations of {migration.path}, then delete the line"
                )
            # Evaluated (and checked) here, once: observers of apply_migration read them.
            migration.operations(step.direction)
            if migration.transactional or fake:
                if not fake:
                    await self.apply_migration(session, migration, step.direction)
                await history.record(session, migration, step.direction, APPLIED)
                await session.commit()
                return step
            # Marked (and committed) first: the statements commit one by one.
            await history.record(session, migration, step.direction, RUNNING)
            await session.commit()
        await self._apply_outside_transaction(step)
        return step

    async def _apply_outside_transaction(self, step: Step) -> None:
        """A ``transactional = False`` migration, marked running: its statements in autocommit."""
        migration = step.migration
        autocommit = Engine(
            self.engine.dsn,
            min_size=0,
            max_size=1,
            **{**self.engine.connect_kwargs, "autocommit": True},
        )
        try:
            async with Session(autocommit) as session:
                await self.apply_migration(session, migration, step.direction)
        except BaseException:
            async with Session(self.engine) as session:
                await history.lock(session)
                await history.abandon(session, migration, step.direction)
                await session.commit()
            raise
        finally:
            await autocommit.dispose()
        async with Session(self.engine) as session:
            await history.lock(session)
            await history.record(session, migration, step.direction, APPLIED)
            await session.commit()

    async def apply_migration(self, session: Session, migration: Migration, direction: str) -> int:
        """Run one migration's ``upgrade()`` or ``downgrade()`` in ``session``; the seam.

        The caller holds the lock and records the history. Returns the number
        of SQL statements of its operations run (data migrations' own
        statements aside). Raises `MigrationFailedError` naming the statement
        that failed.
        """
        operations = migration.operations(direction)
        count = len([s for op in operations for s in op.statements()])
        index = 0
        for op in operations:
            if isinstance(op, RunPython):
                index += 1  # a step of its own: the statements after it are numbered on
                try:
                    await op.function(session)
                except DatabaseError as exc:
                    raise MigrationFailedError(
                        migration.version,
                        migration.name,
                        direction,
                        index,
                        f"(data migration {op.describe()})",
                        exc,
                        transactional=migration.transactional,
                    ) from exc
                continue
            params = op.params if isinstance(op, Execute) else None
            for statement in op.statements():
                index += 1
                try:
                    # Without parameters the session sends the text as written.
                    await session.execute(statement, params)
                except DatabaseError as exc:
                    raise MigrationFailedError(
                        migration.version,
                        migration.name,
                        direction,
                        index,
                        statement,
                        exc,
                        transactional=migration.transactional,
                    ) from exc
        return count

    # -- reviewing ------------------------------------------------------------------------

    async def sql(self, to: str | None = None) -> str:
        """The SQL `migrate` would run from the current history, as a script."""
        self._require_directory()
        return script(self.plan(await self.history(), to))

    async def status(self) -> list[tuple[Migration, HistoryRow | None]]:
        """Each migration of the directory with its history row (None: not applied)."""
        rows = await self.history()
        self.plan(rows)  # refuses edited files and unknown rows
        return [(m, rows.get(m.version)) for m in self.migrations()]

    # -- generating and checking -----------------------------------------------------------

    async def differences(
        self, models: Sequence[type[Table]]
    ) -> tuple[list[Operation], SchemaState]:
        """The upgrade the models need from the live schema, and the live schema."""
        return await differences(self.engine, models)

    async def make(
        self, models: Sequence[type[Table]], message: str, *, empty: bool = False
    ) -> Generated | None:
        """Write the next migration: the difference between the models and the live schema.

        None when there is none. Refuses while migrations of the directory
        are not applied (the difference would repeat them). ``empty``: write
        a migration with no operations, to fill in (a data migration).
        """
        if empty:
            nothing: list[Operation] = []
            generated = write_migration(
                self.directory, self.migrations(), message, nothing, SchemaState()
            )
            self._migrations = None  # read again: the new file is one of them
            return generated
        pending = self.plan(await self.history())
        if pending:
            names = ", ".join(str(s) for s in pending)
            raise MigrationError(
                f"the database is not up to date ({names} to run): apply them with "
                "`data-bridge migrate` before generating the next migration"
            )
        operations, current = await self.differences(models)
        if not operations:
            return None
        generated = write_migration(self.directory, self.migrations(), message, operations, current)
        self._migrations = None  # read again: the new file is one of them
        return generated

    async def check(self, models: Sequence[type[Table]]) -> CheckResult:
        """Whether the database is migrated to the latest version and matches the models."""
        pending = self.plan(await self.history())
        operations, _ = await self.differences(models)
        return CheckResult(pending, operations)


async def _migrate(engine: Engine, directory: str | os.PathLike[str], to: str | None) -> list[Step]:
    return await Migrator(engine, directory).migrate(to)


install_migrate_hook(_migrate)
