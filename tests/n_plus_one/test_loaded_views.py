"""An eager load read through `loaded()` (a serializer's view) is an eager load used."""

from __future__ import annotations

import pytest
from instrumentation_models import Article, Author, Remark
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, ConfigDict

from data_bridge_core import Engine, Session, joinedload, loaded, selectinload
from opentelemetry_instrumentation_data_bridge.telemetry import n1_scope

pytestmark = pytest.mark.usefixtures("instrumented")


class RemarkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    body: str


class ArticleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    remarks: list[RemarkOut]


class AuthorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    articles: list[ArticleOut]


class ArticleWithAuthor(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    author: AuthorName


class AuthorName(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str


ArticleWithAuthor.model_rebuild()


async def test_serializing_through_loaded_uses_the_eager_loads(blog_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            authors = (
                await session.find(Author)
                .options(selectinload(Author.articles).options(selectinload(Article.remarks)))
                .to_list()
            )
            out = [AuthorOut.model_validate(a) for a in loaded(authors)]
    assert sum(len(a.articles) for a in out) == 6
    assert scope.unused_eager_loads == []
    assert scope.findings == []


async def test_a_joined_load_read_through_loaded_is_used(blog_engine: Engine) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            articles = await session.find(Article).options(joinedload(Article.author)).to_list()
            names = [ArticleWithAuthor.model_validate(a).author.name for a in loaded(articles)]
    assert sorted(set(names)) == ["a0", "a1", "a2"]
    assert scope.unused_eager_loads == []


async def test_the_request_pattern_of_the_docs_reports_no_unused_eager_load(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /authors"):
        async with Session(blog_engine) as session:
            authors = await session.find(Author).options(selectinload(Author.articles)).to_list()
            for view in loaded(authors):
                assert len(view.articles) == 2
    assert [s.name for s in spans.get_finished_spans() if s.name == "db.unused_eager_load"] == []


async def test_an_eager_load_nobody_reads_is_still_unused_with_loaded_views_around(
    blog_engine: Engine,
) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            remarks = await session.find(Remark).options(selectinload(Remark.article)).to_list()
            assert [loaded(r).body for r in remarks] == ["ok"] * 6  # columns only
    assert [u.recommendation for u in scope.unused_eager_loads] == [
        "Remove selectinload(Remark.article): the loaded Article rows were never used"
    ]
