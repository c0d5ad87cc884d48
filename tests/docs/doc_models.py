"""Models and rows a document's snippets may assume (``<!-- docs: setup -->`` imports them).

The users/posts/comments blog of docs/usage.md, for the documents whose snippets use
``User``, ``Post``, ``Comment`` and a ``session`` without defining them.
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
