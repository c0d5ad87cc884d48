"""Query.shape (N+1 detection's repeated statements) for the relational query forms."""

from __future__ import annotations

from typing import Any

from conduit_models import Article, Favorite, Follow, Tag, User
from data_bridge_core import exists, func


def forms(value: int, text: str) -> list[Any]:
    # Built only, never run: Model.find() needs no session until a terminal call.
    follows = Follow.find(Follow.follower_id == value)
    articles = Article.find()
    return [
        articles.filter(Article.author_id.in_(follows.select(Follow.followee_id))),
        articles.filter(
            exists(Favorite, Favorite.article_id == Article.id, Favorite.user_id == value)
        ),
        User.find().filter(User.following.any(User.username == text)),
        User.find().join(User.articles, outer=True).filter(Article.views > value),
        Tag.find()
        .join(Tag.articles)
        .select(Tag.name, func.count().named("n"), func.max(Article.views))
        .group_by(Tag.id)
        .having(func.count() > value),
    ]


def test_relational_forms_have_one_shape_whatever_their_values() -> None:
    first, second = forms(1, "ann"), forms(2, "bob")
    assert [q.shape for q in first] == [q.shape for q in second]
    assert len({q.shape for q in first}) == len(first)
    hash(tuple(q.shape for q in first))


def test_an_outer_join_is_another_shape_than_the_inner_one() -> None:
    inner = User.find().join(User.articles)
    outer = User.find().join(User.articles, outer=True)
    assert inner.shape != outer.shape
