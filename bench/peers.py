"""The peers a user would pick instead, and the true floor: raw asyncpg, Tortoise ORM
and Piccolo, each optionally with its OpenTelemetry instrumentation.

They come with the ``bench`` extra of packaging/instrumentation, not with ``test``:
`available()` says which can run here and why the others cannot, and
``bench.run`` prints that line and goes on without them.

Each runs the workloads of ``bench.systems`` on one connection (pool size 1) with
its own best way to express them; where a peer has no such feature (lazy loading,
an ``EXISTS`` filter) the workload says so in bench/README.md.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from psycopg.conninfo import conninfo_to_dict

from bench.schema import DSN
from bench.systems import EAGER_PAGE, PAGE, W7_TAG

HINT = "pip install -e './packaging/instrumentation[bench]'"

USER_COLUMNS = "id, name, email, age, active, country, created_at"
POST_COLUMNS = "id, author_id, title, body"
COMMENT_COLUMNS = "id, post_id, author_id, body, created_at"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available(provider: Any) -> tuple[list[Any], list[str]]:
    """(peer systems that can run here, one line per peer that cannot and why)."""
    systems: list[Any] = []
    skipped: list[str] = []
    for cls in (RawAsyncpg, Tortoise, Piccolo):
        name, instrumentation = cls.label, cls.instrumentation[0]
        missing = [m for m in cls.requires if not _installed(m)]
        if missing:
            skipped.append(
                f"skipped: {name} and {name} instrumented ({', '.join(missing)} not installed; "
                f"{HINT})"
            )
            continue
        systems.append(cls(name))
        if _installed(instrumentation):
            systems.append(cls(f"{name} instrumented", provider))
        else:
            skipped.append(
                f"skipped: {name} instrumented ({instrumentation} not installed; {HINT})"
            )
    return systems, skipped


def is_plain_peer(system: Any) -> bool:
    """A peer without its instrumentation (W3's memory is measured for these)."""
    return isinstance(system, _Peer) and system._provider is None


class _Rollback(Exception):
    """Raised inside a transaction block to leave it rolled back (W4)."""


class _Peer:
    """What every peer shares around its workloads: its name, the modules it needs,
    its instrumentation (process-wide, so switched on for the system's own turn only)
    and its own transaction block, which each workload opens once."""

    label: ClassVar[str]  # the plain variant's name; the other adds " instrumented"
    requires: ClassVar[tuple[str, ...]]  # the modules it runs on
    instrumentation: ClassVar[tuple[str, str]]  # (module, instrumentor class)
    # Bound by setup() to the peer's own way of opening a transaction block.
    transaction: Callable[[], Any]

    def __init__(self, name: str, provider: Any = None):
        self.name = name
        self._provider = provider
        self.instrumentor: Any = None

    def activate(self) -> None:
        self.instrumentor = None
        if self._provider is not None:
            module, instrumentor = self.instrumentation
            self.instrumentor = getattr(importlib.import_module(module), instrumentor)()
            self.instrumentor.instrument(tracer_provider=self._provider)

    def deactivate(self) -> None:
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
            self.instrumentor = None

    async def teardown(self) -> None:
        self.deactivate()
        await self._close()

    async def _close(self) -> None:
        raise NotImplementedError

    async def _rolled_back(self, insert: Callable[[], Awaitable[Any]]) -> None:
        """The insert in a transaction block left rolled back (W4 adds no rows)."""
        try:
            async with self.transaction():
                await insert()
                raise _Rollback
        except _Rollback:
            pass


def _new_users(n: int) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "name": f"n{i}",
            "email": f"new{i}@x",
            "age": 30,
            "active": True,
            "country": "DE",
            "created_at": now,
        }
        for i in range(n)
    ]


class RawAsyncpg(_Peer):
    """The true floor: asyncpg's own protocol and statement cache, records, no ORM."""

    label = "raw asyncpg"
    requires = ("asyncpg",)
    instrumentation = ("opentelemetry.instrumentation.asyncpg", "AsyncPGInstrumentor")

    async def setup(self, schema: str) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(DSN, server_settings={"search_path": schema})
        self.transaction = self.conn.transaction

    async def _close(self) -> None:
        await self.conn.close()

    async def w1(self, ids: list[int]) -> None:
        async with self.transaction():
            for pk in ids:
                await self.conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", pk)

    async def w2(self) -> int:
        async with self.transaction():
            rows = await self.conn.fetch(
                f"SELECT {USER_COLUMNS} FROM users WHERE age > $1 AND active = $2 "
                "ORDER BY created_at DESC LIMIT 100",
                30,
                True,
            )
            return len(rows)

    async def w3(self) -> int:
        async with self.transaction():
            return len(await self.conn.fetch(f"SELECT {POST_COLUMNS} FROM posts"))

    async def w4(self, n: int) -> None:
        # The same batched insert as raw psycopg's: one statement over unnest'ed arrays.
        rows = _new_users(n)
        cols = [[r[k] for r in rows] for k in rows[0]]
        tr = self.conn.transaction()
        await tr.start()
        try:
            await self.conn.fetch(
                "INSERT INTO users (name, email, age, active, country, created_at) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[], "
                "$5::text[], $6::timestamptz[]) RETURNING id",
                *cols,
            )
        finally:
            await tr.rollback()

    async def w5_lazy(self) -> int:
        queries = 1
        async with self.transaction():
            users = await self.conn.fetch(f"SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT 100")
            for row in users:
                await self.conn.fetch(
                    f"SELECT {POST_COLUMNS} FROM posts WHERE author_id = $1", row[0]
                )
                queries += 1
        return queries

    async def w5_eager(self) -> int:
        async with self.transaction():
            users = await self.conn.fetch(f"SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT 100")
            await self.conn.fetch(
                f"SELECT {POST_COLUMNS} FROM posts WHERE author_id = ANY($1::bigint[])",
                [r[0] for r in users],
            )
        return 2

    async def w6(self, pk: int) -> None:
        async with self.transaction():
            await self.conn.fetch(f"SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT 10")
            user = await self.conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", pk)
            assert user is not None
            await self.conn.fetch(f"SELECT {POST_COLUMNS} FROM posts WHERE author_id = $1", pk)
            await self.conn.execute("UPDATE users SET age = $1 WHERE id = $2", user[3] + 1, pk)

    async def w7(self) -> int:
        async with self.transaction():
            rows = await self.conn.fetch(
                "SELECT posts.id, posts.author_id, posts.title, posts.body FROM posts "
                "JOIN users ON users.id = posts.author_id WHERE EXISTS (SELECT 1 FROM post_tags "
                "JOIN tags ON tags.id = post_tags.tag_id WHERE post_tags.post_id = posts.id "
                "AND tags.name = $1) ORDER BY users.name ASC, posts.id ASC LIMIT 100",
                W7_TAG,
            )
            ids = [row[0] for row in rows]
            await self.conn.fetch(
                "SELECT post_tags.post_id, tags.id, tags.name FROM tags "
                "JOIN post_tags ON post_tags.tag_id = tags.id "
                "WHERE post_tags.post_id = ANY($1::bigint[]) ORDER BY tags.id",
                ids,
            )
        return len(ids)

    async def w7_columns(self) -> int:
        async with self.transaction():
            rows = await self.conn.fetch(
                "SELECT posts.id, posts.title, users.name FROM posts "
                "JOIN users ON users.id = posts.author_id WHERE EXISTS (SELECT 1 FROM post_tags "
                "JOIN tags ON tags.id = post_tags.tag_id WHERE post_tags.post_id = posts.id "
                "AND tags.name = $1) ORDER BY users.name ASC, posts.id ASC LIMIT 100",
                W7_TAG,
            )
            return len(rows)

    async def w7_group(self) -> int:
        async with self.transaction():
            rows = await self.conn.fetch(
                "SELECT tags.name, count(*), max(posts.id) FROM tags "
                "JOIN post_tags ON post_tags.tag_id = tags.id "
                "JOIN posts ON posts.id = post_tags.post_id "
                "GROUP BY tags.id ORDER BY count(*) DESC, tags.name ASC"
            )
            return len(rows)

    async def w8(self) -> int:
        async with self.transaction():
            posts = await self.conn.fetch(
                "SELECT posts.id, posts.author_id, posts.title, posts.body, users.id, users.name, "
                "users.email, users.age, users.active, users.country, users.created_at "
                "FROM posts LEFT OUTER JOIN users ON users.id = posts.author_id "
                "ORDER BY posts.id DESC LIMIT $1",
                EAGER_PAGE,
            )
            comments = await self.conn.fetch(
                f"SELECT {COMMENT_COLUMNS} FROM comments WHERE post_id = ANY($1::bigint[]) "
                "ORDER BY id",
                [row[0] for row in posts],
            )
        return len(comments)


class Tortoise(_Peer):
    """Tortoise ORM on its asyncpg backend (the default for postgres://), with
    ``prefetch_related`` as its eager loading."""

    label = "tortoise"
    requires = ("tortoise", "asyncpg")
    instrumentation = ("opentelemetry.instrumentation.tortoiseorm", "TortoiseORMInstrumentor")

    async def setup(self, schema: str) -> None:
        from tortoise import Tortoise as T
        from tortoise.transactions import in_transaction

        from bench import tortoise_models

        self.m = tortoise_models
        info = conninfo_to_dict(DSN)
        await T.init(
            config={
                "connections": {
                    "default": {
                        "engine": "tortoise.backends.asyncpg",
                        "credentials": {
                            "host": info.get("host", "127.0.0.1"),
                            "port": int(info.get("port", 5432)),
                            "user": info.get("user", "postgres"),
                            "password": info.get("password"),
                            "database": info.get("dbname", "test"),
                            "schema": schema,
                            "minsize": 1,
                            "maxsize": 1,
                        },
                    }
                },
                "apps": {"models": {"models": ["bench.tortoise_models"]}},
                "use_tz": True,
                "timezone": "UTC",
            }
        )
        self.transaction = in_transaction

    async def _close(self) -> None:
        from tortoise import Tortoise as T

        await T.close_connections()

    async def w1(self, ids: list[int]) -> None:
        User = self.m.User
        async with self.transaction():
            for pk in ids:
                await User.get(id=pk)

    async def w2(self) -> int:
        async with self.transaction():
            page = (
                await self.m.User.filter(age__gt=30, active=True)
                .order_by("-created_at")
                .limit(PAGE)
            )
            return len(page)

    async def w3(self) -> int:
        async with self.transaction():
            return len(await self.m.Post.all())

    async def w4(self, n: int) -> None:
        User = self.m.User
        users = [User(**row) for row in _new_users(n)]
        # Its batched insert: one multi-row INSERT through executemany.
        await self._rolled_back(lambda: User.bulk_create(users))

    async def w5_lazy(self) -> int:
        async with self.transaction():
            users = await self.m.User.all().order_by("id").limit(PAGE)
            for user in users:
                # No implicit lazy load: a reverse relation is fetched when asked.
                await user.posts.all()
        return 1 + len(users)

    async def w5_eager(self) -> int:
        async with self.transaction():
            users = await self.m.User.all().order_by("id").limit(PAGE).prefetch_related("posts")
            for user in users:
                list(user.posts)
        return 2

    async def w6(self, pk: int) -> None:
        User = self.m.User
        async with self.transaction():
            await User.all().order_by("id").limit(10)
            user = await User.get(id=pk)
            await user.posts.all()
            user.age += 1
            await user.save(update_fields=["age"])

    async def w7(self) -> int:
        async with self.transaction():
            # No EXISTS filter on a relation: tags__name joins post_tags and tags.
            page = (
                await self.m.Post.filter(tags__name=W7_TAG)
                .order_by("author__name", "id")
                .limit(PAGE)
                .prefetch_related("tags")
            )
            for post in page:
                list(post.tags)
            return len(page)

    async def w7_columns(self) -> int:
        async with self.transaction():
            rows = (
                await self.m.Post.filter(tags__name=W7_TAG)
                .order_by("author__name", "id")
                .limit(PAGE)
                .values_list("id", "title", "author__name")
            )
            return len(rows)

    async def w7_group(self) -> int:
        from tortoise.functions import Count, Max

        async with self.transaction():
            # annotate() with aggregates groups by the tag's columns.
            rows = (
                await self.m.Tag.annotate(n=Count("posts"), last=Max("posts__id"))
                .order_by("-n", "name")
                .values_list("name", "n", "last")
            )
            return len(rows)

    async def w8(self) -> int:
        async with self.transaction():
            # The author joined in (select_related), the comments a second query.
            page = (
                await self.m.Post.all()
                .order_by("-id")
                .limit(EAGER_PAGE)
                .select_related("author")
                .prefetch_related("comments")
            )
            comments = 0
            for post in page:
                post.author  # noqa: B018
                comments += len(list(post.comments))
            return comments


class Piccolo(_Peer):
    """Piccolo's objects API on asyncpg. No relation loading into objects (no lazy
    loads, no reverse-FK prefetch): related rows are a second query, grouped by
    hand; the many-to-many comes from its M2M select (one query)."""

    label = "piccolo"
    requires = ("piccolo", "asyncpg")
    # Piccolo has no instrumentation of its own; it runs on asyncpg.
    instrumentation = RawAsyncpg.instrumentation
    _users = 0

    async def setup(self, schema: str) -> None:
        from bench import piccolo_tables

        self.m = piccolo_tables
        self.engine = piccolo_tables.ENGINE
        self.transaction = self.engine.transaction
        # The tables' one engine is shared by the plain and instrumented variants:
        # the first setup opens its pool of one, the last teardown closes it.
        if Piccolo._users == 0:
            self.engine.config = {"dsn": DSN, "server_settings": {"search_path": schema}}
            await self.engine.start_connection_pool(min_size=1, max_size=1)
        Piccolo._users += 1

    async def _close(self) -> None:
        Piccolo._users -= 1
        if Piccolo._users == 0:
            await self.engine.close_connection_pool()

    async def w1(self, ids: list[int]) -> None:
        User = self.m.User
        async with self.transaction():
            for pk in ids:
                await User.objects().get(User.id == pk)

    async def w2(self) -> int:
        User = self.m.User
        async with self.transaction():
            page = (
                await User.objects()
                .where((User.age > 30) & (User.active == True))  # noqa: E712
                .order_by(User.created_at, ascending=False)
                .limit(PAGE)
            )
            return len(page)

    async def w3(self) -> int:
        async with self.transaction():
            return len(await self.m.Post.objects())

    async def w4(self, n: int) -> None:
        User = self.m.User
        users = [User(**row) for row in _new_users(n)]
        # One multi-row INSERT ... RETURNING: the ids land on the objects.
        await self._rolled_back(lambda: User.insert(*users))

    async def w5_lazy(self) -> int:
        User, Post = self.m.User, self.m.Post
        async with self.transaction():
            users = await User.objects().order_by(User.id).limit(PAGE)
            for user in users:
                await Post.objects().where(Post.author == user.id)
        return 1 + len(users)

    async def w5_eager(self) -> int:
        User, Post = self.m.User, self.m.Post
        async with self.transaction():
            users = await User.objects().order_by(User.id).limit(PAGE)
            posts = await Post.objects().where(Post.author.is_in([u.id for u in users]))
            by_author: dict[int, list[Any]] = defaultdict(list)
            for post in posts:
                by_author[post.author].append(post)
        return 2

    async def w6(self, pk: int) -> None:
        User, Post = self.m.User, self.m.Post
        async with self.transaction():
            await User.objects().order_by(User.id).limit(10)
            user = await User.objects().get(User.id == pk)
            assert user is not None
            await Post.objects().where(Post.author == pk)
            user.age += 1
            await user.save([User.age])

    async def w7(self) -> int:
        Post, PostTags, Tag = self.m.Post, self.m.PostTags, self.m.Tag
        async with self.transaction():
            # The tag filter as an IN subquery (no EXISTS on a relation); the tags
            # as its M2M select: one query, a correlated subquery per post, dicts.
            page = (
                await Post.select(*Post.all_columns(), Post.tags(Tag.id, Tag.name, as_list=False))
                .where(
                    Post.id.is_in(PostTags.select(PostTags.post).where(PostTags.tag.name == W7_TAG))
                )
                .order_by(Post.author.name, Post.id)
                .limit(PAGE)
            )
            return len(page)

    async def w7_columns(self) -> int:
        Post, PostTags = self.m.Post, self.m.PostTags
        async with self.transaction():
            rows = (
                await Post.select(Post.id, Post.title, Post.author.name)
                .where(
                    Post.id.is_in(PostTags.select(PostTags.post).where(PostTags.tag.name == W7_TAG))
                )
                .order_by(Post.author.name, Post.id)
                .limit(PAGE)
            )
            return len(rows)

    async def w7_group(self) -> int:
        from piccolo.query import OrderByRaw
        from piccolo.query.functions.aggregate import Count, Max

        PostTags = self.m.PostTags
        async with self.transaction():
            # From the link table: its joins reach the tag's name and the post's id.
            rows = (
                await PostTags.select(
                    PostTags.tag.name, Count(alias="n"), Max(PostTags.post.id, alias="last")
                )
                .group_by(PostTags.tag.name)
                .order_by(OrderByRaw("n"), ascending=False)
                .order_by(PostTags.tag.name)
            )
            return len(rows)

    async def w8(self) -> int:
        Post, Comment = self.m.Post, self.m.Comment
        async with self.transaction():
            # The author as a prefetched foreign key (a join, nested objects); no
            # reverse-FK prefetch: the comments by hand, grouped by post.
            page = (
                await Post.objects(Post.author).order_by(Post.id, ascending=False).limit(EAGER_PAGE)
            )
            comments = (
                await Comment.objects()
                .where(Comment.post.is_in([p.id for p in page]))
                .order_by(Comment.id)
            )
            by_post: dict[int, list[Any]] = defaultdict(list)
            for comment in comments:
                by_post[comment.post].append(comment)
            return sum(len(by_post[post.id]) for post in page)


async def _once(system: Any, schema: str) -> dict[str, Any]:
    await system.setup(schema)
    system.activate()
    try:
        await system.w1([1, 2, 3])
        return {
            "w2": await system.w2(),
            "w3": await system.w3(),
            "w4": await system.w4(1000),
            "w5_lazy": await system.w5_lazy(),
            "w5_eager": await system.w5_eager(),
            "w6": await system.w6(7),
            "w7": await system.w7(),
            "w7_columns": await system.w7_columns(),
            "w7_group": await system.w7_group(),
            "w8": await system.w8(),
        }
    finally:
        system.deactivate()
        await system.teardown()


async def smoke() -> dict[str, Any]:
    """Every installed peer and variant runs every workload once, in a schema of its
    own; per system its results and the spans its turn recorded ("skipped": the lines)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bench.schema import create_schema, drop_schema

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    systems, skipped = available(provider)
    out: dict[str, Any] = {"skipped": skipped, "systems": {}}
    schema = create_schema()
    try:
        for system in systems:
            exporter.clear()
            results = await _once(system, schema)
            out["systems"][system.name] = {
                "results": results,
                "spans": len(exporter.get_finished_spans()),
            }
    finally:
        drop_schema(schema)
        provider.shutdown()
    return out


if __name__ == "__main__":
    import asyncio
    import json

    print(json.dumps(asyncio.run(smoke())))
