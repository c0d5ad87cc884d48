"""Raw SQL: session.execute() rows; session.from_sql() hydrates models into the identity map."""

from __future__ import annotations

import pytest
from core_fixtures import DSN, Post, User, seed

from data_bridge_core import Column, Engine, Session, Table, UnsupportedOperationError


async def test_execute_returns_rows_with_bound_values(engine: Engine) -> None:
    await seed(engine, users=3, posts=0)  # ages 10, 20, 30
    async with Session(engine) as session:
        rows = await session.execute("SELECT count(*) FROM users WHERE age > %s", (18,))
        assert list(rows) == [(2,)]
        assert rows[0][0] == 2


async def test_from_sql_hydrates_models_through_the_identity_map(engine: Engine) -> None:
    await seed(engine, users=3, posts=2)
    async with Session(engine) as session:
        loaded = await session.get(User, 2)
        users = await session.from_sql(
            User,
            "SELECT DISTINCT users.* FROM users JOIN posts ON posts.author_id = users.id "
            "WHERE users.age >= %s ORDER BY users.id",
            (20,),
        )
        assert [u.name for u in users] == ["u1", "u2"]
        assert users[0] is loaded  # one row, one object
        posts = await users[1].posts  # a normal, attached instance
        assert [p.title for p in posts] == ["p2.0", "p2.1"]
        # columns in another order, and extra ones, are fine
        reordered = await session.from_sql(
            Post, "SELECT title, 1 AS extra, author_id, id FROM posts WHERE id = %s", (1,)
        )
        assert reordered[0].title == "p0.0" and reordered[0].author_id == 1


async def test_from_sql_names_the_columns_a_statement_leaves_out(engine: Engine) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        with pytest.raises(UnsupportedOperationError, match=r"column\(s\) email, age, active"):
            await session.from_sql(User, "SELECT id, name FROM users")
        assert len(await session.from_sql(User, "SELECT * FROM users")) == 1


class Host(Table):
    id: int = Column(primary_key=True)
    ip: str = Column(column_type="inet", unique=True)
    net: str | None = Column(default=None, column_type="cidr")
    label: str = "x"

    class Settings:
        table_name = "hosts"


async def test_from_sql_reads_inet_and_cidr_columns_as_the_text_find_gives(schema: str) -> None:
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    try:
        await engine.create_all(Host)
        async with Session(engine) as session:
            session.add_all(
                [
                    Host(id=1, ip="10.0.0.1/32", net="10.0.0.0/8"),
                    Host(id=2, ip="::ffff:1.2.3.4", net="2001:db8::/32"),
                    Host(id=3, ip="10.0.0.1/8", net=None),
                ]
            )
            await session.commit()
        async with Session(engine) as session:
            raw = await session.from_sql(Host, "SELECT t.* FROM hosts t ORDER BY t.id")
            shown = [(h.ip, h.net) for h in raw]
        async with Session(engine) as session:
            found = await session.find(Host).order_by(Host.id).to_list()
        assert shown == [(h.ip, h.net) for h in found]
        assert shown == [
            ("10.0.0.1", "10.0.0.0/8"),
            ("::ffff:1.2.3.4", "2001:db8::/32"),
            ("10.0.0.1/8", None),
        ]
        assert all(type(ip) is str for ip, _ in shown)
    finally:
        await engine.dispose()
