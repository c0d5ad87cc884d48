"""The benchmark schema as Piccolo tables; the engine is bound in ``bench.peers.Piccolo``."""

from __future__ import annotations

from piccolo.columns import M2M, BigInt, BigSerial, Boolean, ForeignKey, Text, Timestamptz
from piccolo.columns.reference import LazyTableReference
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

from bench.schema import DSN

# Tables name their engine when defined; bench.peers.Piccolo sets the schema's
# search_path in its config and opens a pool of one before the first query.
ENGINE = PostgresEngine(config={"dsn": DSN}, extensions=())


class User(Table, tablename="users", db=ENGINE):
    id = BigSerial(primary_key=True)
    name = Text()
    email = Text()
    age = BigInt()
    active = Boolean()
    country = Text(null=True)
    created_at = Timestamptz()


class Tag(Table, tablename="tags", db=ENGINE):
    id = BigSerial(primary_key=True)
    name = Text()


class Post(Table, tablename="posts", db=ENGINE):
    id = BigSerial(primary_key=True)
    author = ForeignKey(User, db_column_name="author_id")
    title = Text()
    body = Text()
    tags = M2M(LazyTableReference("PostTags", module_path=__name__))


class PostTags(Table, tablename="post_tags", db=ENGINE):
    # Piccolo wants one primary-key column; post_tags has a composite key, so
    # post_id stands in (only ever read through the M2M and explicit columns).
    post = ForeignKey(Post, db_column_name="post_id", primary_key=True)
    tag = ForeignKey(Tag, db_column_name="tag_id")


class Comment(Table, tablename="comments", db=ENGINE):
    id = BigSerial(primary_key=True)
    post = ForeignKey(Post, db_column_name="post_id")
    # The commenter: a plain key (W8 loads the post's author, not the commenters').
    author_id = BigInt()
    body = Text()
    created_at = Timestamptz()


TABLES = (User, Tag, Post, PostTags, Comment)
