"""The benchmark schema as Tortoise ORM models (module ``bench.tortoise_models``)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class User(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.TextField()
    email = fields.TextField()
    age = fields.BigIntField()
    active = fields.BooleanField()
    country = fields.TextField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "users"


class Tag(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.TextField()

    class Meta:
        table = "tags"


class Post(Model):
    id = fields.BigIntField(primary_key=True)
    author: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="posts", source_field="author_id"
    )
    title = fields.TextField()
    body = fields.TextField()
    tags: fields.ManyToManyRelation[Tag] = fields.ManyToManyField(
        "models.Tag",
        related_name="posts",
        through="post_tags",
        forward_key="tag_id",
        backward_key="post_id",
    )

    class Meta:
        table = "posts"


class Comment(Model):
    id = fields.BigIntField(primary_key=True)
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name="comments", source_field="post_id"
    )
    # The commenter: a plain key (W8 loads the post's author, not the commenters').
    author_id = fields.BigIntField()
    body = fields.TextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "comments"
