"""Migration files: found in a directory, loaded, checksummed.

A migration is a Python file named ``NNNN_name.py`` (``0001_initial.py``):
the number is its version, applied in increasing order. It defines
``upgrade()`` and ``downgrade()``, each returning a list of operations
(`data_bridge_core.migrations.operations`), and may set
``transactional = False`` for operations that cannot run in a transaction
(``CREATE INDEX CONCURRENTLY``).

The checksum is the SHA-256 of the file's bytes (line endings normalised):
the history table keeps it, and a file edited after it was applied is
refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from data_bridge_core.migrations.errors import MigrationError
from data_bridge_core.migrations.operations import Operation, RunPython

FILE_NAME = re.compile(r"^(\d{4,})_([A-Za-z0-9_]+)\.py$")
REVIEW_LINE = re.compile(r"^[ \t]*#[ \t]*REVIEW:", re.MULTILINE)
UPGRADE, DOWNGRADE = "upgrade", "downgrade"


@dataclass
class Migration:
    version: str
    name: str
    path: Path
    checksum: str
    source: str
    _module: ModuleType | None = field(default=None, repr=False)
    _operations: dict[str, list[Operation]] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"

    @property
    def needs_review(self) -> bool:
        """The file still has a ``# REVIEW:`` line written by autogenerate."""
        return REVIEW_LINE.search(self.source) is not None

    @property
    def transactional(self) -> bool:
        return bool(getattr(self.module, "transactional", True))

    @property
    def module(self) -> ModuleType:
        if self._module is None:
            self._module = _load_module(self)
        return self._module

    def operations(self, direction: str) -> list[Operation]:
        """The operations of ``upgrade()`` or ``downgrade()`` (checked, computed once)."""
        found = self._operations.get(direction)
        if found is None:
            function = getattr(self.module, direction, None)
            if not callable(function):
                raise MigrationError(f"migration {self.label} defines no {direction}() function")
            result = function()
            if not isinstance(result, list | tuple) or not all(
                isinstance(o, Operation) for o in result
            ):
                raise MigrationError(
                    f"{direction}() of migration {self.label} must return a list of operations "
                    "(op.add_column(...), op.execute(...), ...)"
                )
            found = list(result)
            self._check_transactional(direction, found)
            self._operations[direction] = found
        return found

    def _check_transactional(self, direction: str, operations: list[Operation]) -> None:
        if self.transactional:
            for op in operations:
                if not op.transactional:
                    raise MigrationError(
                        f"migration {self.label}: {op.describe()} cannot run inside a "
                        "transaction; put it in a migration of its own with "
                        "`transactional = False`"
                    )
        else:
            for op in operations:
                if isinstance(op, RunPython):
                    raise MigrationError(
                        f"migration {self.label} has transactional = False: a data migration "
                        "(op.run) needs a transaction; move it to another migration"
                    )

    def statements(self, direction: str) -> list[str]:
        """The SQL of the migration's operations, in order (data migrations send their own)."""
        return [s for op in self.operations(direction) for s in op.statements()]


def checksum(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def _load_module(migration: Migration) -> ModuleType:
    # A private module name: migration files are not importable as a package.
    module_name = f"_data_bridge_migration_{migration.checksum[:16]}_{migration.version}"
    spec = importlib.util.spec_from_file_location(module_name, migration.path)
    if spec is None or spec.loader is None:
        raise MigrationError(f"cannot load migration file {migration.path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise MigrationError(
            f"migration {migration.label} ({migration.path}) failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return module


def load_directory(directory: str | Path) -> list[Migration]:
    """The migrations of a directory, by version (a missing directory holds none).

    Raises MigrationError for two files of the same version.
    """
    path = Path(directory)
    if not path.exists():
        return []
    if not path.is_dir():
        raise MigrationError(f"{path} is not a directory")
    found: dict[str, Migration] = {}
    for file in sorted(path.iterdir()):
        match = FILE_NAME.match(file.name)
        if match is None:
            continue
        version, name = match.group(1), match.group(2)
        if version in found:
            raise MigrationError(
                f"two migrations have version {version}: {found[version].path.name} and "
                f"{file.name} (renumber one: versions are applied in order)"
            )
        data = file.read_bytes()
        found[version] = Migration(
            version, name, file, checksum(data), data.decode("utf-8", errors="replace")
        )
    return [found[v] for v in sorted(found, key=int)]
