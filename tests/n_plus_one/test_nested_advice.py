"""N+1 advice is the full loader path from the query that loaded the root objects."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from instrumentation_models import Article, Author, Remark

from data_bridge_core import Engine, Session, joinedload, noload, raiseload, selectinload
from opentelemetry_instrumentation_data_bridge.telemetry import n1_scope

pytestmark = pytest.mark.usefixtures("instrumented")

QUERY_LINE: dict[str, int] = {}


def apply(advice: str) -> Any:
    """The advice, evaluated as the user would paste it."""
    names = {
        "selectinload": selectinload,
        "joinedload": joinedload,
        "noload": noload,
        "raiseload": raiseload,
        "Author": Author,
        "Article": Article,
        "Remark": Remark,
    }
    return eval(advice, names)


async def remarks_of_every_article(engine: Engine, *options: Any) -> None:
    async with Session(engine) as session:
        QUERY_LINE["authors"] = sys._getframe().f_lineno + 1
        authors = await session.find(Author).options(*options).order_by(Author.id).to_list()
        for author in authors:
            for article in await author.articles:
                await article.remarks  # the second-level N+1 line


async def test_a_second_level_loop_gets_the_path_from_the_root_query(blog_engine: Engine) -> None:
    with n1_scope() as scope:
        await remarks_of_every_article(blog_engine, selectinload(Author.articles))
    assert [f.recommendation for f in scope.findings] == [
        "Use selectinload(Author.articles).options(selectinload(Article.remarks))"
    ]
    finding = scope.findings[0]
    assert finding.query_site is not None
    assert finding.query_site.function == "remarks_of_every_article"
    assert finding.query_site.lineno == QUERY_LINE["authors"]
    assert f"query at {finding.query_site}" in finding.message()


async def test_nested_lazy_loops_get_one_path_each_and_the_advice_removes_them(
    blog_engine: Engine,
) -> None:
    with n1_scope() as scope:
        await remarks_of_every_article(blog_engine)
    advice = sorted(f.recommendation for f in scope.findings)
    assert advice == [
        "Use selectinload(Author.articles)",
        "Use selectinload(Author.articles).options(selectinload(Article.remarks))",
    ]
    # The longer advice, pasted into the root query's .options(...), removes both loops.
    option = apply(advice[1].removeprefix("Use "))
    with n1_scope() as fixed:
        await remarks_of_every_article(blog_engine, option)
    assert fixed.findings == []
    assert fixed.unused_eager_loads == []


async def test_parents_from_a_joined_load_get_the_joined_path(blog_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            remarks = await session.find(Remark).options(joinedload(Remark.article)).to_list()
            for remark in remarks:
                article = await remark.article  # joined: no query
                await article.author  # the N+1: one query per article's author
    [finding] = scope.findings
    assert finding.recommendation == (
        "Use joinedload(Remark.article).options(selectinload(Article.author))"
    )
    apply(finding.recommendation.removeprefix("Use "))  # valid code


async def test_a_loop_in_a_later_scope_gets_no_path_through_an_ended_scope(
    blog_engine: Engine,
) -> None:
    # How the articles were loaded is noted on their results, with the scope: a
    # later scope looping over the same rows advises from what it saw itself.
    async with Session(blog_engine) as session:
        with n1_scope() as first:
            authors = await session.find(Author).order_by(Author.id).to_list()
            articles = [list(await author.articles) for author in authors]
        assert [f.recommendation for f in first.findings] == ["Use selectinload(Author.articles)"]
        with n1_scope() as later:
            for of_author in articles:
                for article in of_author:
                    await article.remarks
    assert [f.recommendation for f in later.findings] == ["Use selectinload(Article.remarks)"]
