"""The benchmark schema as data_bridge_core models."""

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
    author_id: int = Column(foreign_key="users.id")
    title: str
    body: str
    author: User = relationship(back_populates="posts")
    tags: list[Tag] = relationship(secondary="post_tags", back_populates="posts")
    comments: list[Comment] = relationship(back_populates="post")

    class Settings:
        table_name = "posts"


class Comment(Table):
    id: int = Column(primary_key=True)
    post_id: int = Column(foreign_key="posts.id")
    # The commenter: a plain key (W8 loads the post's author, not the commenters').
    author_id: int = Column(foreign_key="users.id")
    body: str
    created_at: datetime
    post: Post = relationship(back_populates="comments")

    class Settings:
        table_name = "comments"


class Tag(Table):
    id: int = Column(primary_key=True)
    name: str = Column(unique=True)
    posts: list[Post] = relationship(secondary="post_tags", back_populates="tags")

    class Settings:
        table_name = "tags"


class PostTag(Table):
    post_id: int = Column(primary_key=True, foreign_key="posts.id")
    tag_id: int = Column(primary_key=True, foreign_key="tags.id")

    class Settings:
        table_name = "post_tags"
