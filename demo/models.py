"""The demo's blog schema: users, their posts, and comments on posts."""

from __future__ import annotations

from datetime import datetime

from data_bridge_core import Column, Table, relationship


class User(Table):
    id: int = Column(primary_key=True)
    name: str
    email: str = Column(unique=True)
    age: int = 0
    active: bool = True
    country: str | None = None
    created_at: datetime = Column(default_factory=datetime.now)
    posts: list[Post] = relationship(back_populates="author")

    class Settings:
        table_name = "users"


class Post(Table):
    id: int = Column(primary_key=True)
    author_id: int = Column(foreign_key="users.id", index=True)
    title: str
    body: str = ""
    author: User = relationship(back_populates="posts")
    comments: list[Comment] = relationship(back_populates="post")

    class Settings:
        table_name = "posts"


class Comment(Table):
    id: int = Column(primary_key=True)
    post_id: int = Column(foreign_key="posts.id", index=True)
    author_name: str
    body: str
    post: Post = relationship(back_populates="comments")

    class Settings:
        table_name = "comments"


MODELS = (User, Post, Comment)
