"""Which loads count, and where they are attributed (patterns from real services)."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest
from instrumentation_models import Article, Author

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.n_plus_one import detector
from opentelemetry_instrumentation_data_bridge.telemetry import configure_n1_detection, n1_scope

pytestmark = pytest.mark.usefixtures("instrumented")


async def test_a_gathered_loop_is_reported_at_the_gather_line(blog_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            authors = await session.find(Author).to_list()
            detector._library_file.clear()  # nothing known yet of this file's frames
            line = sys._getframe().f_lineno + 1
            loaded = await asyncio.gather(*(a.articles for a in authors))
    assert sum(len(articles) for articles in loaded) == 6
    [finding] = scope.findings
    assert finding.site.filepath == __file__
    assert finding.site.lineno == line
    assert finding.site.function == "test_a_gathered_loop_is_reported_at_the_gather_line"
    assert finding.count == 3


async def test_parents_first_fetched_by_get_count_once_a_multi_row_find_returns_them(
    blog_engine: Engine,
) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            for pk in (1, 2, 3):
                await session.get(Author, pk)  # in the identity map from here on
            for author in await session.find(Author).order_by(Author.id).to_list():
                await author.articles
    get, finding = scope.findings  # the get() per key is a repeated query of its own
    assert (get.relationship, get.count) == ("get", 3)
    assert (finding.relationship, finding.count) == ("articles", 3)


async def test_objects_fetched_one_by_one_with_get_never_count(blog_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            for pk in (1, 2, 3):
                author = await session.get(Author, pk)
                assert author is not None
                await author.articles
    # No N+1 of the loads; the get() per key is a repeated query of its own.
    assert [(f.relationship, f.count) for f in scope.findings] == [("get", 3)]


async def test_parents_are_counted_by_identity_across_collected_chunks(
    blog_engine: Engine,
) -> None:
    configure_n1_detection(threshold=5)
    with n1_scope() as scope:
        for offset in (0, 2, 4):  # one session per chunk of 2 articles
            async with Session(blog_engine) as session:
                chunk = session.find(Article).order_by(Article.id).offset(offset).limit(2)
                for article in await chunk.to_list():
                    await article.remarks
            del chunk, article
            gc.collect()  # the chunk's objects are gone: their id() may be reused
    [finding] = scope.findings
    assert finding.count == 6


async def test_the_same_parent_loaded_again_in_another_session_counts_once(
    blog_engine: Engine,
) -> None:
    configure_n1_detection(threshold=4)
    with n1_scope() as scope:
        for _ in range(2):
            async with Session(blog_engine) as session:
                for author in await session.find(Author).to_list():
                    await author.articles
    assert scope.findings == []  # 3 distinct authors < 4, however often loaded
