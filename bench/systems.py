"""The systems under test: one class per way of talking to PostgreSQL.

Each runs the same workloads (see workloads.py) on one connection (pool size
1), with the same schema and the same statements' shapes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from bench.schema import DSN

PAGE = 100
W7_TAG = "tag3"
# W8, the eager page: the newest posts (highest id), each with its author and comments.
EAGER_PAGE = 50


class RawPsycopg:
    """The driver's limit: hand-written SQL, tuples, one connection."""

    name = "raw psycopg"

    async def setup(self, schema: str) -> None:
        self.conn = await psycopg.AsyncConnection.connect(DSN, options=f"-c search_path={schema}")

    async def teardown(self) -> None:
        await self.conn.close()

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    async def w1(self, ids: list[int]) -> None:
        async with self.conn.transaction():
            for pk in ids:
                cur = await self.conn.execute(
                    "SELECT id, name, email, age, active, country, created_at FROM users "
                    "WHERE id = %s",
                    (pk,),
                    binary=True,
                )
                await cur.fetchone()

    async def w2(self) -> int:
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT id, name, email, age, active, country, created_at FROM users "
                "WHERE age > %s AND active = %s ORDER BY created_at DESC LIMIT 100",
                (30, True),
                binary=True,
            )
            return len(await cur.fetchall())

    async def w3(self) -> int:
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT id, author_id, title, body FROM posts", binary=True
            )
            return len(await cur.fetchall())

    async def w4(self, n: int) -> None:
        # The best batched insert here: one statement over unnest'ed arrays, sent in
        # binary (%b: about twice as fast to dump as text arrays).
        now = dt.datetime.now(dt.UTC)
        rows = [(f"n{i}", f"new{i}@x", 30, True, "DE", now) for i in range(n)]
        cols = list(zip(*rows, strict=True))
        async with self.conn.transaction(force_rollback=True):
            cur = await self.conn.execute(
                "INSERT INTO users (name, email, age, active, country, created_at) "
                "SELECT * FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::bool[], "
                "%b::text[], %b::timestamptz[]) RETURNING id",
                [list(c) for c in cols],
            )
            await cur.fetchall()

    async def w5_lazy(self) -> int:
        queries = 1
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT id, name, email, age, active, country, created_at FROM users "
                "ORDER BY id LIMIT 100",
                binary=True,
            )
            for row in await cur.fetchall():
                posts = await self.conn.execute(
                    "SELECT id, author_id, title, body FROM posts WHERE author_id = %s",
                    (row[0],),
                    binary=True,
                )
                await posts.fetchall()
                queries += 1
        return queries

    async def w5_eager(self) -> int:
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT id, name, email, age, active, country, created_at FROM users "
                "ORDER BY id LIMIT 100",
                binary=True,
            )
            ids = [r[0] for r in await cur.fetchall()]
            posts = await self.conn.execute(
                "SELECT id, author_id, title, body FROM posts WHERE author_id = ANY(%s)",
                (ids,),
                binary=True,
            )
            await posts.fetchall()
        return 2

    async def w6(self, pk: int) -> None:
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT id, name, email, age, active, country, created_at FROM users "
                "ORDER BY id LIMIT 10",
                binary=True,
            )
            await cur.fetchall()
            cur = await self.conn.execute(
                "SELECT id, name, email, age, active, country, created_at FROM users WHERE id = %s",
                (pk,),
                binary=True,
            )
            user = await cur.fetchone()
            assert user is not None
            cur = await self.conn.execute(
                "SELECT id, author_id, title, body FROM posts WHERE author_id = %s",
                (pk,),
                binary=True,
            )
            await cur.fetchall()
            await self.conn.execute("UPDATE users SET age = %s WHERE id = %s", (user[3] + 1, pk))

    async def w7(self) -> int:
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT posts.id, posts.author_id, posts.title, posts.body FROM posts "
                "JOIN users ON users.id = posts.author_id WHERE EXISTS (SELECT 1 FROM post_tags "
                "JOIN tags ON tags.id = post_tags.tag_id WHERE post_tags.post_id = posts.id "
                "AND tags.name = %s) ORDER BY users.name ASC, posts.id ASC LIMIT 100",
                (W7_TAG,),
                binary=True,
            )
            ids = [row[0] for row in await cur.fetchall()]
            tags = await self.conn.execute(
                "SELECT post_tags.post_id, tags.id, tags.name FROM tags "
                "JOIN post_tags ON post_tags.tag_id = tags.id "
                "WHERE post_tags.post_id = ANY(%s) ORDER BY tags.id",
                (ids,),
                binary=True,
            )
            await tags.fetchall()
        return len(ids)

    async def w7_columns(self) -> int:
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT posts.id, posts.title, users.name FROM posts "
                "JOIN users ON users.id = posts.author_id WHERE EXISTS (SELECT 1 FROM post_tags "
                "JOIN tags ON tags.id = post_tags.tag_id WHERE post_tags.post_id = posts.id "
                "AND tags.name = %s) ORDER BY users.name ASC, posts.id ASC LIMIT 100",
                (W7_TAG,),
                binary=True,
            )
            return len(await cur.fetchall())

    async def w7_group(self) -> int:
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT tags.name, count(*), max(posts.id) FROM tags "
                "JOIN post_tags ON post_tags.tag_id = tags.id "
                "JOIN posts ON posts.id = post_tags.post_id "
                "GROUP BY tags.id ORDER BY count(*) DESC, tags.name ASC",
                binary=True,
            )
            return len(await cur.fetchall())

    async def w8(self) -> int:
        """W8, every system: the comments loaded (150, 3 for each of 50 posts)."""
        # The statements data_bridge sends for joinedload(author) + selectinload(comments).
        async with self.conn.transaction():
            cur = await self.conn.execute(
                "SELECT posts.id, posts.author_id, posts.title, posts.body, users.id, users.name, "
                "users.email, users.age, users.active, users.country, users.created_at "
                "FROM posts LEFT OUTER JOIN users ON users.id = posts.author_id "
                "ORDER BY posts.id DESC LIMIT %s",
                (EAGER_PAGE,),
                binary=True,
            )
            posts = await cur.fetchall()
            comments = await self.conn.execute(
                "SELECT id, post_id, author_id, body, created_at FROM comments "
                "WHERE post_id = ANY(%s) ORDER BY id",
                ([row[0] for row in posts],),
                binary=True,
            )
            return len(await comments.fetchall())


class DataBridge:
    """data_bridge_core, optionally instrumented by the given setup function."""

    def __init__(
        self,
        name: str,
        instrument: Any = None,
        then_uninstrument: bool = False,
        bare_span_provider: Any = None,
    ):
        self.name = name
        self._instrument = instrument
        self._then_uninstrument = then_uninstrument
        self.instrumentor: Any = None
        # The in-flow span floor: W1 with one bare SDK span around each get.
        self._floor_tracer = (
            None if bare_span_provider is None else bare_span_provider.get_tracer("floor")
        )

    async def setup(self, schema: str) -> None:
        from bench import orm_models
        from data_bridge_core import Engine

        self.m = orm_models
        self.engine = Engine(DSN, min_size=1, max_size=1, options=f"-c search_path={schema}")

    def activate(self) -> None:
        """Instrumentation is process-wide: each variant switches it on for its own turn."""
        if self._instrument is not None:
            self.instrumentor = self._instrument()
            if self._then_uninstrument:
                self.instrumentor.uninstrument()
                self.instrumentor = None

    def deactivate(self) -> None:
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
            self.instrumentor = None

    async def teardown(self) -> None:
        self.deactivate()
        await self.engine.dispose()

    async def w1(self, ids: list[int]) -> None:
        from data_bridge_core import Session

        async with Session(self.engine) as s:
            if self._floor_tracer is not None:
                from bench.overhead import ATTRS

                for pk in ids:
                    with self._floor_tracer.start_as_current_span(
                        "db.query.find", attributes=ATTRS
                    ):
                        await s.get(self.m.User, pk)
                return
            for pk in ids:
                await s.get(self.m.User, pk)

    async def w2(self) -> int:
        from data_bridge_core import Session

        User = self.m.User
        async with Session(self.engine) as s:
            page = await (
                s.find(User)
                .filter(User.age > 30, User.active == True)  # noqa: E712
                .order_by(User.created_at.desc())
                .limit(PAGE)
                .to_list()
            )
            return len(page)

    async def w3(self) -> int:
        from data_bridge_core import Session

        async with Session(self.engine) as s:
            return len(await s.find(self.m.Post).to_list())

    async def w4(self, n: int) -> None:
        from data_bridge_core import Session

        now = dt.datetime.now(dt.UTC)
        async with Session(self.engine) as s:
            s.add_all(
                [
                    self.m.User(
                        name=f"n{i}",
                        email=f"new{i}@x",
                        age=30,
                        active=True,
                        country="DE",
                        created_at=now,
                    )
                    for i in range(n)
                ]
            )
            await s.flush()
            await s.rollback()

    async def w5_lazy(self) -> int:
        from data_bridge_core import Session

        async with Session(self.engine) as s:
            users = await s.find(self.m.User).order_by(self.m.User.id).limit(PAGE).to_list()
            for user in users:
                await user.posts
        return 1 + len(users)

    async def w5_eager(self) -> int:
        from data_bridge_core import Session, selectinload

        User = self.m.User
        async with Session(self.engine) as s:
            users = await (
                s.find(User)
                .options(selectinload(User.posts))
                .order_by(User.id)
                .limit(PAGE)
                .to_list()
            )
            for user in users:
                await user.posts
        return 2

    async def w6(self, pk: int) -> None:
        from data_bridge_core import Session

        User = self.m.User
        async with Session(self.engine) as s:
            await s.find(User).order_by(User.id).limit(10).to_list()
            user = await s.get(User, pk)
            assert user is not None
            await user.posts
            user.age += 1
            await s.commit()

    async def w7(self) -> int:
        from data_bridge_core import Session, selectinload

        Post, Tag, User = self.m.Post, self.m.Tag, self.m.User
        async with Session(self.engine) as s:
            page = await (
                s.find(Post)
                .filter(Post.tags.any(Tag.name == W7_TAG))
                .join(Post.author)
                .order_by(User.name.asc(), Post.id.asc())
                .limit(PAGE)
                .options(selectinload(Post.tags))
                .to_list()
            )
            for post in page:
                await post.tags
            return len(page)

    async def w7_columns(self) -> int:
        from data_bridge_core import Session

        Post, Tag, User = self.m.Post, self.m.Tag, self.m.User
        async with Session(self.engine) as s:
            rows = await (
                s.find(Post)
                .filter(Post.tags.any(Tag.name == W7_TAG))
                .join(Post.author)
                .order_by(User.name.asc(), Post.id.asc())
                .limit(PAGE)
                .select(Post.id, Post.title, User.name)
                .to_list()
            )
            return len(rows)

    async def w7_group(self) -> int:
        from data_bridge_core import Session, func

        Post, Tag = self.m.Post, self.m.Tag
        async with Session(self.engine) as s:
            rows = await (
                s.find(Tag)
                .join(Tag.posts)
                .order_by(func.count().desc(), Tag.name.asc())
                .select(Tag.name, func.count(), func.max(Post.id))
                .group_by(Tag.id)
                .to_list()
            )
            return len(rows)

    async def w8(self) -> int:
        from data_bridge_core import Session, joinedload, selectinload

        Post = self.m.Post
        async with Session(self.engine) as s:
            page = await (
                s.find(Post)
                .options(joinedload(Post.author), selectinload(Post.comments))
                .order_by(Post.id.desc())
                .limit(EAGER_PAGE)
                .to_list()
            )
            comments = 0
            for post in page:
                await post.author
                comments += len(await post.comments)
            return comments


class SqlAlchemy:
    """SQLAlchemy 2 async ORM on psycopg, optionally with its OpenTelemetry instrumentation."""

    def __init__(self, name: str, provider: Any = None):
        self.name = name
        self._provider = provider

    async def setup(self, schema: str) -> None:
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        from bench import sqla_models

        self.m = sqla_models
        url = DSN.replace("postgresql://", "postgresql+psycopg://", 1)
        self.engine = create_async_engine(
            url, pool_size=1, max_overflow=0, connect_args={"options": f"-c search_path={schema}"}
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.instrumentor = None
        if self._provider is not None:
            from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

            self.instrumentor = SQLAlchemyInstrumentor()
            self.instrumentor.instrument(
                engine=self.engine.sync_engine, tracer_provider=self._provider
            )

    async def teardown(self) -> None:
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
        await self.engine.dispose()

    def activate(self) -> None:
        pass  # instrumentation is per engine: set up once

    def deactivate(self) -> None:
        pass

    async def w1(self, ids: list[int]) -> None:
        async with self.sessions() as s:
            for pk in ids:
                await s.get(self.m.User, pk)

    async def w2(self) -> int:
        from sqlalchemy import select

        User = self.m.User
        async with self.sessions() as s:
            rows = (
                await s.scalars(
                    select(User)
                    .where(User.age > 30, User.active.is_(True))
                    .order_by(User.created_at.desc())
                    .limit(PAGE)
                )
            ).all()
            return len(rows)

    async def w3(self) -> int:
        from sqlalchemy import select

        async with self.sessions() as s:
            return len((await s.scalars(select(self.m.Post))).all())

    async def w4(self, n: int) -> None:
        now = dt.datetime.now(dt.UTC)
        async with self.sessions() as s:
            s.add_all(
                [
                    self.m.User(
                        name=f"n{i}",
                        email=f"new{i}@x",
                        age=30,
                        active=True,
                        country="DE",
                        created_at=now,
                    )
                    for i in range(n)
                ]
            )
            await s.flush()
            await s.rollback()

    async def w5_lazy(self) -> int:
        from sqlalchemy import select

        User = self.m.User
        async with self.sessions() as s:
            users = (await s.scalars(select(User).order_by(User.id).limit(PAGE))).all()
            for user in users:
                await user.awaitable_attrs.posts
        return 1 + len(users)

    async def w5_eager(self) -> int:
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        User = self.m.User
        async with self.sessions() as s:
            users = (
                await s.scalars(
                    select(User).options(selectinload(User.posts)).order_by(User.id).limit(PAGE)
                )
            ).all()
            for user in users:
                await user.awaitable_attrs.posts
        return 2

    async def w6(self, pk: int) -> None:
        from sqlalchemy import select

        User = self.m.User
        async with self.sessions() as s:
            (await s.scalars(select(User).order_by(User.id).limit(10))).all()
            user = await s.get(User, pk)
            assert user is not None
            await user.awaitable_attrs.posts
            user.age += 1
            await s.commit()

    async def w7(self) -> int:
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        Post, Tag, User = self.m.Post, self.m.Tag, self.m.User
        async with self.sessions() as s:
            page = (
                await s.scalars(
                    select(Post)
                    .join(Post.author)
                    .where(Post.tags.any(Tag.name == W7_TAG))
                    .order_by(User.name.asc(), Post.id.asc())
                    .limit(PAGE)
                    .options(selectinload(Post.tags))
                )
            ).all()
            for post in page:
                await post.awaitable_attrs.tags
            return len(page)

    async def w7_columns(self) -> int:
        from sqlalchemy import select

        Post, Tag, User = self.m.Post, self.m.Tag, self.m.User
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(Post.id, Post.title, User.name)
                    .join(Post.author)
                    .where(Post.tags.any(Tag.name == W7_TAG))
                    .order_by(User.name.asc(), Post.id.asc())
                    .limit(PAGE)
                )
            ).all()
            return len(rows)

    async def w7_group(self) -> int:
        from sqlalchemy import func, select

        Post, Tag = self.m.Post, self.m.Tag
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    select(Tag.name, func.count(), func.max(Post.id))
                    .join(Tag.posts)
                    .group_by(Tag.id)
                    .order_by(func.count().desc(), Tag.name.asc())
                )
            ).all()
            return len(rows)

    async def w8(self) -> int:
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        Post = self.m.Post
        async with self.sessions() as s:
            page = (
                await s.scalars(
                    select(Post)
                    .options(selectinload(Post.author), selectinload(Post.comments))
                    .order_by(Post.id.desc())
                    .limit(EAGER_PAGE)
                )
            ).all()
            comments = 0
            for post in page:
                await post.awaitable_attrs.author
                comments += len(await post.awaitable_attrs.comments)
            return comments
