"""The RealWorld (Conduit) list endpoints, each one query, without raw SQL.

- the feed: articles by the authors a user follows, newest first, with the
  author's name and the favorites count;
- the tag list: every tag with its article count;
- the article list: filtered by tag, author and "favorited by", paged, with
  the author's name and the favorites count.

Each is a column selection (`select(...)`): typed rows, no objects built.

    python examples/realworld_queries.py

against ``DATA_BRIDGE_DSN``, else a throwaway embedded PostgreSQL (examples/example_database.py).
Its tables come from its migrations (examples/migrations/realworld_queries, generated with
``data-bridge makemigrations --models realworld_queries --dir migrations/realworld_queries``;
docs/migrations.md); the run applies them and unapplies them at the end.

The core's relational query tests use these same models (tests/conduit_models.py):
``bio`` and ``views`` are there for them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from data_bridge_core import Column, Engine, Mapped, Rel, Session, Table, exists, func, relationship


class User(Table):
    id: Mapped[int] = Column(primary_key=True)
    username: Mapped[str] = Column(unique=True)
    bio: Mapped[str | None] = Column(default=None)
    articles: Rel[list[Article]] = relationship(back_populates="author")
    # Self-referential many-to-many: foreign_key= names the column of "follows"
    # that points at the owner's row.
    following: Rel[list[User]] = relationship(
        secondary="follows", foreign_key="follower_id", back_populates="followers"
    )
    followers: Rel[list[User]] = relationship(
        secondary="follows", foreign_key="followee_id", back_populates="following"
    )

    class Settings:
        table_name = "users"


class Follow(Table):
    follower_id: Mapped[int] = Column(primary_key=True, foreign_key="users.id")
    followee_id: Mapped[int] = Column(primary_key=True, foreign_key="users.id")

    class Settings:
        table_name = "follows"


class Article(Table):
    id: Mapped[int] = Column(primary_key=True)
    author_id: Mapped[int] = Column(foreign_key="users.id")
    slug: Mapped[str] = Column(unique=True)
    title: Mapped[str]
    views: Mapped[int] = Column(default=0)
    created_at: Mapped[datetime]
    author: Rel[User] = relationship(back_populates="articles")
    tags: Rel[list[Tag]] = relationship(secondary="article_tags", back_populates="articles")
    favorites: Rel[list[Favorite]] = relationship()

    class Settings:
        table_name = "articles"


class Tag(Table):
    id: Mapped[int] = Column(primary_key=True)
    name: Mapped[str] = Column(unique=True)
    articles: Rel[list[Article]] = relationship(secondary="article_tags", back_populates="tags")

    class Settings:
        table_name = "tags"


class ArticleTag(Table):
    article_id: Mapped[int] = Column(primary_key=True, foreign_key="articles.id")
    tag_id: Mapped[int] = Column(primary_key=True, foreign_key="tags.id")

    class Settings:
        table_name = "article_tags"


class Favorite(Table):
    user_id: Mapped[int] = Column(primary_key=True, foreign_key="users.id")
    article_id: Mapped[int] = Column(primary_key=True, foreign_key="articles.id")

    class Settings:
        table_name = "favorites"


MODELS = (User, Follow, Article, Tag, ArticleTag, Favorite)

# One row of the feed and of the article list.
ArticleRow = tuple[str, str, datetime, str, int]


async def feed(
    session: Session, user_id: int, limit: int = 20, offset: int = 0
) -> list[ArticleRow]:
    """GET /api/articles/feed: the followed authors' articles, newest first."""
    followed = session.find(Follow).filter(Follow.follower_id == user_id).select(Follow.followee_id)
    return await (
        session.find(Article)
        .join(Article.author)
        .join(Article.favorites, outer=True)  # articles nobody favorited count 0
        .filter(Article.author_id.in_(followed))
        .order_by(Article.created_at.desc(), Article.id)
        .select(
            Article.slug,
            Article.title,
            Article.created_at,
            User.username.named("author"),
            func.count(Favorite.user_id).named("favorites"),
        )
        .group_by(Article.id, User.id)
        .limit(limit)
        .offset(offset)
        .to_list()
    )


async def tag_list(session: Session) -> list[tuple[str, int]]:
    """GET /api/tags, with each tag's article count, most used first."""
    return await (
        session.find(Tag)
        .join(Tag.articles)
        .order_by(func.count().desc(), Tag.name)
        .select(Tag.name, func.count().named("articles"))
        .group_by(Tag.id)
        .to_list()
    )


async def article_list(
    session: Session,
    *,
    tag: str | None = None,
    author: str | None = None,
    favorited_by: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[ArticleRow]:
    """GET /api/articles?tag=&author=&favorited=: newest first, paged."""
    query = session.find(Article).join(Article.author).join(Article.favorites, outer=True)
    if tag is not None:
        query = query.filter(Article.tags.any(Tag.name == tag))
    if author is not None:
        query = query.filter(User.username == author)
    if favorited_by is not None:
        fans = session.find(User).filter(User.username == favorited_by).select(User.id)
        query = query.filter(
            exists(Favorite, Favorite.article_id == Article.id, Favorite.user_id.in_(fans))
        )
    return await (
        query.order_by(Article.created_at.desc(), Article.id)
        .select(
            Article.slug,
            Article.title,
            Article.created_at,
            User.username.named("author"),
            func.count(Favorite.user_id).named("favorites"),
        )
        .group_by(Article.id, User.id)
        .limit(limit)
        .offset(offset)
        .to_list()
    )


async def seed(session: Session) -> None:
    """ann writes "intro" [python, sql] and "joins" [sql], bob writes "async" [python];
    ann follows bob, cat follows ann and bob; bob and cat favorite "intro", cat "async"."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ann, bob, cat = User(username="ann"), User(username="bob"), User(username="cat")
    python, sql = Tag(name="python"), Tag(name="sql")
    intro = Article(author=ann, slug="intro", title="Intro", created_at=t0, tags=[python, sql])
    later = t0 + timedelta(days=1)
    aio = Article(author=bob, slug="async", title="Async", created_at=later, tags=[python])
    joins = Article(author=ann, slug="joins", title="Joins", created_at=t0 + timedelta(days=2))
    joins.tags = [sql]
    session.add_all([intro, aio, joins, cat])
    await session.flush()
    ann.following.add(bob)
    cat.following.add(ann)
    cat.following.add(bob)
    session.add_all(
        [
            Favorite(user_id=bob.id, article_id=intro.id),
            Favorite(user_id=cat.id, article_id=intro.id),
            Favorite(user_id=cat.id, article_id=aio.id),
        ]
    )
    await session.commit()


MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "realworld_queries"


async def main(dsn: str) -> None:
    engine = Engine(dsn, min_size=0, max_size=2)
    await engine.migrate(MIGRATIONS)
    try:
        async with Session(engine) as session:
            await seed(session)
            cat = await session.find(User).filter(User.username == "cat").first()
            assert cat is not None
            for slug, _title, _at, author, favorites in await feed(session, cat.id):
                print(f"feed: {slug} by {author}, {favorites} favorites")
            for name, count in await tag_list(session):
                print(f"tag: {name} ({count})")
            for row in await article_list(session, tag="python", favorited_by="cat"):
                print(f"article: {row[0]}")
    finally:
        await engine.migrate(MIGRATIONS, to="zero")  # a second run starts from scratch
        await engine.dispose()


if __name__ == "__main__":
    from example_database import example_database  # DATA_BRIDGE_DSN, else an embedded server

    with example_database() as dsn:
        asyncio.run(main(dsn))
