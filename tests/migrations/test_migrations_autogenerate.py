"""Autogenerate against the real server: for each kind of change, change the models,
generate, apply, `check` is clean, and the downgrade restores the previous schema
exactly as the catalog shows it (then the upgrade applies again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalog_snapshot import snapshot

from data_bridge_core import Column, Engine, Table
from data_bridge_core.migrations import MigrationError, Migrator
from data_bridge_core.migrations import operations as op
from data_bridge_core.migrations.operations import (
    AddColumn,
    AddForeignKey,
    AddPrimaryKey,
    AddUnique,
    AlterColumnDefault,
    AlterColumnNullable,
    AlterColumnType,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropForeignKey,
    DropIndex,
    DropPrimaryKey,
    DropUnique,
    Operation,
)

Models = list[type[Table]]


async def change_and_back(
    engine: Engine, schema: str, directory: Path, before: Models, after: Models
) -> list[Operation]:
    """before -> generate, apply; after -> generate, apply, check; downgrade; upgrade again.

    Returns the operations of the second migration.
    """
    first = await Migrator(engine, directory).make(before, "before")
    assert first is not None
    await Migrator(engine, directory).migrate()
    assert (await Migrator(engine, directory).check(before)).clean
    previous = await snapshot(schema)

    second = await Migrator(engine, directory).make(after, "after")
    assert second is not None
    assert second.path.name == "0002_after.py"
    steps = await Migrator(engine, directory).migrate()
    assert [str(s) for s in steps] == ["0002_after (upgrade)"]
    result = await Migrator(engine, directory).check(after)
    assert result.clean, [o.describe() for o in result.operations]
    changed = await snapshot(schema)
    assert changed != previous

    steps = await Migrator(engine, directory).migrate(to="0001")
    assert [str(s) for s in steps] == ["0002_after (downgrade)"]
    assert await snapshot(schema) == previous
    back = await Migrator(engine, directory).check(before)
    assert back.operations == []  # the models of before match; 0002 is pending again
    assert [str(s) for s in back.pending] == ["0002_after (upgrade)"]

    await Migrator(engine, directory).migrate()
    assert await snapshot(schema) == changed
    return second.operations


def kinds(operations: list[Operation]) -> list[str]:
    return [type(o).__name__ for o in operations]


# -- models: each function is one version of a small schema -------------------------------


def authors(**extra_settings: object) -> type[Table]:
    class Author(Table):
        id: int = Column(primary_key=True)
        name: str
        email: str

        class Settings:
            table_name = "authors"

    return Author


def articles() -> type[Table]:
    class Article(Table):
        id: int = Column(primary_key=True)
        author_id: int = Column(foreign_key="authors.id")
        title: str

        class Settings:
            table_name = "articles"

    return Article


async def test_a_new_model_creates_its_table_and_the_downgrade_drops_it(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    ops = await change_and_back(
        migration_engine, schema, directory, [authors()], [authors(), articles()]
    )
    assert kinds(ops) == ["CreateTable", "AddForeignKey"]
    create = ops[0]
    assert isinstance(create, CreateTable)
    assert [(c.name, c.type, c.nullable, c.identity) for c in create.columns] == [
        ("id", "bigint", False, True),
        ("author_id", "bigint", False, False),
        ("title", "text", False, False),
    ]


async def test_a_removed_model_drops_its_table_and_the_downgrade_recreates_it(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    ops = await change_and_back(
        migration_engine, schema, directory, [authors(), articles()], [authors()]
    )
    assert kinds(ops) == ["DropForeignKey", "DropTable"]


def people(*extra: str) -> type[Table]:
    class Person(Table):
        id: int = Column(primary_key=True)
        name: str

        class Settings:
            table_name = "people"

    if not extra:
        return Person

    class Extended(Table):
        id: int = Column(primary_key=True)
        name: str
        bio: str | None = None
        score: int = Column(server_default="0")

        class Settings:
            table_name = "people"

    return Extended


async def test_added_columns_round_trip(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    ops = await change_and_back(
        migration_engine, schema, directory, [people()], [people("bio", "score")]
    )
    assert kinds(ops) == ["AddColumn", "AddColumn"]
    added = ops[1]
    assert isinstance(added, AddColumn)
    assert (added.column.name, added.column.nullable, added.column.default) == ("score", False, "0")


async def test_dropped_columns_round_trip(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    ops = await change_and_back(
        migration_engine, schema, directory, [people("bio", "score")], [people()]
    )
    assert kinds(ops) == ["DropColumn", "DropColumn"]
    dropped = ops[1]
    assert isinstance(dropped, DropColumn)
    assert dropped.column == op.column("score", "bigint", nullable=False, default="0")


async def test_type_nullability_and_default_changes_round_trip(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    class Before(Table):
        id: int = Column(primary_key=True)
        age: int = Column(server_default="0")
        code: str = Column(column_type="varchar(10)")
        nickname: str
        rank: int | None = None

        class Settings:
            table_name = "players"

    class After(Table):
        id: int = Column(primary_key=True)
        age: int = Column(server_default="1", column_type="integer")
        code: str = Column(column_type="varchar(40)")
        nickname: str | None = None
        rank: int = Column(server_default="10")

        class Settings:
            table_name = "players"

    ops = await change_and_back(migration_engine, schema, directory, [Before], [After])
    assert kinds(ops) == [
        "AlterColumnDefault",  # age: the default goes before its type changes...
        "AlterColumnType",
        "AlterColumnDefault",  # ...and comes back after
        "AlterColumnType",  # code: varchar(10) -> varchar(40)
        "AlterColumnNullable",  # nickname
        "AlterColumnNullable",  # rank: NOT NULL
        "AlterColumnDefault",  # rank: DEFAULT 10
    ]
    age_type = ops[1]
    assert isinstance(age_type, AlterColumnType)
    assert (age_type.old_type, age_type.type) == ("bigint", "integer")
    assert isinstance(ops[4], AlterColumnNullable) and ops[4].nullable
    assert isinstance(ops[6], AlterColumnDefault) and ops[6].default == "10"


async def test_unique_constraints_and_indexes_single_and_multi_column_round_trip(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    class Before(Table):
        id: int = Column(primary_key=True)
        email: str
        first: str
        last: str
        city: str

        class Settings:
            table_name = "contacts"

    class After(Table):
        id: int = Column(primary_key=True)
        email: str = Column(unique=True)
        first: str
        last: str
        city: str = Column(index=True)

        class Settings:
            table_name = "contacts"
            unique = [("first", "last")]
            indexes = [("city", "last")]

    ops = await change_and_back(migration_engine, schema, directory, [Before], [After])
    assert kinds(ops) == ["AddUnique", "AddUnique", "CreateIndex", "CreateIndex"]
    assert isinstance(ops[0], AddUnique) and ops[0].key == op.key("contacts_email_key", ["email"])
    assert isinstance(ops[1], AddUnique) and ops[1].key.columns == ("first", "last")
    assert isinstance(ops[2], CreateIndex) and ops[2].index.name == "ix_contacts_city"
    assert isinstance(ops[3], CreateIndex) and ops[3].index.columns == ("city", "last")


async def test_removed_unique_constraints_and_indexes_round_trip(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    class Before(Table):
        id: int = Column(primary_key=True)
        email: str = Column(unique=True)
        city: str = Column(index=True)

        class Settings:
            table_name = "contacts"
            indexes = [("city", "email")]

    class After(Table):
        id: int = Column(primary_key=True)
        email: str
        city: str

        class Settings:
            table_name = "contacts"

    ops = await change_and_back(migration_engine, schema, directory, [Before], [After])
    assert kinds(ops) == ["DropIndex", "DropIndex", "DropUnique"]
    assert all(isinstance(o, DropIndex | DropUnique) for o in ops)


async def test_foreign_keys_added_and_changed_round_trip(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    class Owner(Table):
        id: int = Column(primary_key=True)

        class Settings:
            table_name = "owners"

    class PetBefore(Table):
        id: int = Column(primary_key=True)
        owner_id: int = Column(foreign_key="owners.id")
        vet_id: int | None = None

        class Settings:
            table_name = "pets"

    class PetAfter(Table):
        id: int = Column(primary_key=True)
        owner_id: int = Column(foreign_key="owners.id", on_delete="CASCADE")
        vet_id: int | None = Column(default=None, foreign_key="owners.id")

        class Settings:
            table_name = "pets"

    ops = await change_and_back(
        migration_engine, schema, directory, [Owner, PetBefore], [Owner, PetAfter]
    )
    assert kinds(ops) == ["DropForeignKey", "AddForeignKey", "AddForeignKey"]
    assert isinstance(ops[1], AddForeignKey) and ops[1].key.on_delete == "CASCADE"
    assert isinstance(ops[0], DropForeignKey) and ops[0].key.on_delete is None
    assert isinstance(ops[2], AddForeignKey) and ops[2].key.name == "pets_vet_id_fkey"


async def test_a_many_to_many_link_table_round_trips(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    class Post(Table):
        id: int = Column(primary_key=True)

        class Settings:
            table_name = "posts"

    class Tag(Table):
        id: int = Column(primary_key=True)
        label: str = Column(unique=True)

        class Settings:
            table_name = "tags"

    class PostTag(Table):
        post_id: int = Column(primary_key=True, foreign_key="posts.id", on_delete="CASCADE")
        tag_id: int = Column(primary_key=True, foreign_key="tags.id", on_delete="CASCADE")

        class Settings:
            table_name = "post_tags"

    ops = await change_and_back(migration_engine, schema, directory, [Post], [Post, Tag, PostTag])
    assert kinds(ops) == ["CreateTable", "CreateTable", "AddForeignKey", "AddForeignKey"]
    link = ops[0]
    assert isinstance(link, CreateTable) and link.table == "post_tags"
    assert link.primary_key == op.key("post_tags_pkey", ["post_id", "tag_id"])


async def test_a_composite_primary_key_changed_round_trips(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    class Before(Table):
        group_id: int = Column(primary_key=True)
        user_id: int = Column(primary_key=True)

        class Settings:
            table_name = "memberships"

    class After(Table):
        group_id: int = Column(primary_key=True)
        user_id: int = Column(primary_key=True)
        role: str = Column(primary_key=True, server_default="'member'")

        class Settings:
            table_name = "memberships"

    ops = await change_and_back(migration_engine, schema, directory, [Before], [After])
    assert kinds(ops) == ["DropPrimaryKey", "AddColumn", "AddPrimaryKey"]
    assert isinstance(ops[0], DropPrimaryKey)
    assert isinstance(ops[2], AddPrimaryKey)
    assert ops[2].key.columns == ("group_id", "user_id", "role")


# -- generation-time behaviour ----------------------------------------------------------------


async def test_generation_names_the_production_hazards(
    migration_engine: Engine, directory: Path
) -> None:
    class Before(Table):
        id: int = Column(primary_key=True)
        age: int
        old: str | None = None
        city: str

        class Settings:
            table_name = "users"

    class After(Table):
        id: int = Column(primary_key=True)
        age: str
        city: str = Column(index=True)
        required: str

        class Settings:
            table_name = "users"

    migrator = Migrator(migration_engine, directory)
    await migrator.make([Before], "initial")
    await migrator.migrate()
    generated = await Migrator(migration_engine, directory).make([After], "risky")
    assert generated is not None
    found = {(type(h.operation).__name__, h.message[:41]) for h in generated.hazards}
    assert found == {
        ("DropColumn", "the running version of the application st"),
        ("AlterColumnType", "rewrites the whole table under an ACCESS "),
        ("AddColumn", "NOT NULL without a default on an existing"),
        ("CreateIndex", "blocks writes to the table while the inde"),
    }
    text = generated.path.read_text()
    assert text.count("# HAZARD:") == 4


async def test_no_changes_writes_no_file(migration_engine: Engine, directory: Path) -> None:
    migrator = Migrator(migration_engine, directory)
    assert await migrator.make([authors()], "initial") is not None
    await migrator.migrate()
    assert await Migrator(migration_engine, directory).make([authors()], "again") is None
    assert sorted(p.name for p in directory.iterdir()) == ["0001_initial.py"]  # noqa: ASYNC240


async def test_generation_refuses_while_migrations_are_pending(
    migration_engine: Engine, directory: Path
) -> None:
    migrator = Migrator(migration_engine, directory)
    await migrator.make([authors()], "initial")
    with pytest.raises(MigrationError, match=r"not up to date \(0001_initial \(upgrade\) to run\)"):
        await Migrator(migration_engine, directory).make([authors(), articles()], "next")


async def test_a_review_line_stops_migrate_until_it_is_removed(
    migration_engine: Engine, directory: Path
) -> None:
    class Before(Table):
        id: int = Column(primary_key=True)
        fullname: str

        class Settings:
            table_name = "people"

    class After(Table):
        id: int = Column(primary_key=True)
        name: str

        class Settings:
            table_name = "people"

    await Migrator(migration_engine, directory).make([Before], "initial")
    await Migrator(migration_engine, directory).migrate()
    generated = await Migrator(migration_engine, directory).make([After], "rename")
    assert generated is not None and generated.review
    with pytest.raises(MigrationError, match="0002_rename still has a '# REVIEW:' line"):
        await Migrator(migration_engine, directory).migrate()
    # The reviewer writes the rename and deletes the REVIEW lines.
    text = generated.path.read_text()
    kept = [line for line in text.splitlines() if "REVIEW" not in line]
    generated.path.write_text("\n".join(kept) + "\n")
    steps = await Migrator(migration_engine, directory).migrate()
    assert [str(s) for s in steps] == ["0002_rename (upgrade)"]


async def test_a_foreign_key_to_a_table_no_model_maps_is_named(
    migration_engine: Engine, directory: Path
) -> None:
    with pytest.raises(MigrationError, match=r"Article.author_id references table 'authors'"):
        await Migrator(migration_engine, directory).make([articles()], "orphan")


async def test_a_key_that_stops_being_an_identity_round_trips(
    migration_engine: Engine, schema: str, directory: Path
) -> None:
    class Before(Table):
        id: int = Column(primary_key=True)
        label: str

        class Settings:
            table_name = "codes"

    class After(Table):
        id: int = Column(primary_key=True, server_default="0")
        label: str

        class Settings:
            table_name = "codes"

    ops = await change_and_back(migration_engine, schema, directory, [Before], [After])
    assert kinds(ops) == ["AlterColumnIdentity", "AlterColumnDefault"]


async def test_a_table_dropped_and_another_created_asks_for_a_review_and_warns(
    migration_engine: Engine, directory: Path
) -> None:
    class Old(Table):
        id: int = Column(primary_key=True)

        class Settings:
            table_name = "old_things"

    class New(Table):
        id: int = Column(primary_key=True)

        class Settings:
            table_name = "things"

    await Migrator(migration_engine, directory).make([Old], "initial")
    await Migrator(migration_engine, directory).migrate()
    generated = await Migrator(migration_engine, directory).make([New], "rename")
    assert generated is not None
    assert generated.review == [
        "table(s) old_things dropped and things created. If this is a rename, replace them "
        "with op.execute('ALTER TABLE ... RENAME TO ...') (drop + create loses the rows)."
    ]
    assert [str(h) for h in generated.hazards] == [
        "drop table old_things: drops the table and its rows (the downgrade recreates it, empty)."
    ]
