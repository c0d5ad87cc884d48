"""The errors of migrations: each names the migration (and the statement) it is about."""

from __future__ import annotations

from data_bridge_core.errors import DataBridgeError


class MigrationError(DataBridgeError):
    """A migration could not be generated, loaded or applied; the message says why."""


class MigrationFailedError(MigrationError):
    """A statement of a migration failed; the database stays at the previous version.

    ``version``/``name`` name the migration, ``statement`` is the SQL that
    failed (the migration's own text, written by its author), ``index`` its
    position (1-based) among the migration's steps: its statements, a data
    migration (``op.run``) counting as one. ``original`` is the
    database error (also the ``__cause__``), quoted in the message.
    """

    def __init__(
        self,
        version: str,
        name: str,
        direction: str,
        index: int,
        statement: str,
        original: BaseException,
        *,
        transactional: bool = True,
    ) -> None:
        outcome = (
            f"the database stays at the version before {version}"
            if transactional
            else f"statements 1 to {index - 1} of this non-transactional migration stay applied; "
            f"{version} is not recorded as applied"
        )
        super().__init__(
            f"migration {version}_{name} ({direction}) failed at statement {index}: "
            f"{statement}\n  {original}\n  {outcome}"
        )
        self.version = version
        self.name = name
        self.direction = direction
        self.index = index
        self.statement = statement
        self.original = original


class EditedMigrationError(MigrationError):
    """An applied migration's file changed since it was applied (its checksum differs)."""
