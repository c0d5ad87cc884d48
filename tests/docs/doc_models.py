"""Models and rows a document's snippets may assume (``<!-- docs: setup -->`` imports them).

The users/posts/comments blog of docs/usage.md, for the documents whose snippets use
``User``, ``Post``, ``Comment`` and a ``session`` without defining them; a tree of
``Node`` rows and the ``Follow`` rows (user follows author) of docs/n-plus-one.md.
"""

from __future__ import annotations

from data_bridge_core import Column, Engine, Mapped, Rel, Session, Table, relationship


class User(Table):
    id: Mapped[int] = Column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str] = Column(unique=True)
    age: Mapped[int] = Column(default=0)
    active: Mapped[bool] = Column(default=True)
    posts: Rel[list[Post]] = relationship(back_populates="author")

    class Settings:
        table_name = "users"


class Post(Table):
    id: Mapped[int] = Column(primary_key=True)
    author_id: Mapped[int] = Column(foreign_key="users.id")
    title: Mapped[str]
    views: Mapped[int] = Column(default=0)
    author: Rel[User] = relationship(back_populates="posts")
    comments: Rel[list[Comment]] = relationship(back_populates="post")

    class Settings:
        table_name = "posts"


class Comment(Table):
    id: Mapped[int] = Column(primary_key=True)
    post_id: Mapped[int] = Column(foreign_key="posts.id")
    body: Mapped[str]
    post: Rel[Post] = relationship(back_populates="comments")

    class Settings:
        table_name = "comments"


class Node(Table):
    """A self-referencing one-to-many: each node's children."""

    id: Mapped[int] = Column(primary_key=True)
    parent_id: Mapped[int | None] = Column(foreign_key="nodes.id", default=None)
    label: Mapped[str]
    children: Rel[list[Node]] = relationship(back_populates="parent")
    parent: Rel[Node | None] = relationship(back_populates="children")

    class Settings:
        table_name = "nodes"


class Follow(Table):
    """A user following an author (a composite key)."""

    follower_id: Mapped[int] = Column(primary_key=True)
    author_id: Mapped[int] = Column(primary_key=True)

    class Settings:
        table_name = "follows"


async def blog(engine: Engine, users: int = 6) -> Session:
    """The tables, `users` users with two posts of one comment each; an open session."""
    await engine.create_all(User, Post, Comment)
    session = Session(engine)
    await session.open()
    for n in range(users):
        author = User(name=f"user{n}", email=f"user{n}@example.com", age=20 + n)
        for title in ("first", "second"):
            post = Post(title=f"{title} of user{n}", author=author)
            session.add(Comment(body="nice", post=post))
    await session.commit()
    return session


async def tree(engine: Engine, roots: int = 2, fan_out: int = 2, levels: int = 3) -> None:
    """The nodes table, `roots` roots, `fan_out` children per node, `levels` below the roots.

    Written by a session of its own: the caller's loads them as any stored rows.
    """
    await engine.create_all(Node)
    async with Session(engine) as session:
        level: list[Node | None] = [None]
        for depth in range(levels + 1):
            below: list[Node | None] = []
            for parent in level:
                for n in range(roots if depth == 0 else fan_out):
                    node = Node(label=f"{depth}.{n}", parent=parent)
                    session.add(node)
                    below.append(node)
            level = below
        await session.commit()  # one flush: new parents are inserted before their children


async def follows(engine: Engine, follower_id: int, author_ids: list[int]) -> None:
    """The follows table, `follower_id` following each of `author_ids` (a session of its own)."""
    await engine.create_all(Follow)
    async with Session(engine) as session:
        session.add_all([Follow(follower_id=follower_id, author_id=a) for a in author_ids])
        await session.commit()
