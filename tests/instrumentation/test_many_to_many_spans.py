"""Relationship spans of a many-to-many name the association table."""

from __future__ import annotations

import pytest
from instrumentation_models import Author
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Column, Engine, Session, Table, relationship, selectinload
from finished_spans import attrs, named


class Shelf(Table):
    id: int = Column(primary_key=True)
    name: str
    books: list[Book] = relationship(secondary="shelf_books", back_populates="shelves")

    class Settings:
        table_name = "shelves"


class Book(Table):
    id: int = Column(primary_key=True)
    title: str
    shelves: list[Shelf] = relationship(secondary="shelf_books", back_populates="books")

    class Settings:
        table_name = "books"


class ShelfBook(Table):
    shelf_id: int = Column(primary_key=True, foreign_key="shelves.id")
    book_id: int = Column(primary_key=True, foreign_key="books.id")

    class Settings:
        table_name = "shelf_books"


@pytest.mark.usefixtures("instrumented")
async def test_many_to_many_lazy_and_selectin_spans_carry_strategy_and_association_table(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    await blog_engine.create_all(Shelf, Book, ShelfBook)
    async with Session(blog_engine) as session:
        session.add(Shelf(name="s", books=[Book(title="a"), Book(title="b")]))
        await session.commit()
    spans.clear()
    async with Session(blog_engine) as session:
        shelf = await session.find(Shelf).first()
        assert shelf is not None
        assert len(await shelf.books) == 2
        shelves = await session.find(Shelf).options(selectinload(Shelf.books)).to_list()
        assert len(shelves) == 1
    (lazy,) = (attrs(s) for s in named(spans, "db.relationship.select"))
    assert lazy["db.relationship.strategy"] == "select"
    assert lazy["db.relationship.secondary"] == "shelf_books"
    assert lazy["db.relationship.fk_column"] == "shelf_id"
    assert lazy["db.result.count"] == 2
    (eager,) = (attrs(s) for s in named(spans, "db.relationship.selectinload"))
    assert eager["db.relationship.strategy"] == "selectinload"
    assert eager["db.relationship.secondary"] == "shelf_books"
    assert eager["db.result.count"] == 2


@pytest.mark.usefixtures("instrumented")
async def test_one_to_many_spans_have_no_association_table(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        author = await session.get(Author, 1)
        assert author is not None
        await author.articles
    (lazy,) = (attrs(s) for s in named(spans, "db.relationship.select"))
    assert lazy["db.relationship.strategy"] == "select"
    assert "db.relationship.secondary" not in lazy


@pytest.mark.usefixtures("instrumented")
async def test_upsert_and_from_sql_send_their_statements_inside_query_spans(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        fresh = Author(name="new", email="a0@x.org")  # a0@x.org exists: updated
        n = await session.upsert([fresh], on=("email",), update=("name",))
        assert n == 1
        rows = await session.from_sql(Author, "SELECT * FROM authors WHERE age > %s", (25,))
        assert len(rows) == 2
    (upsert,) = (attrs(s) for s in named(spans, "db.query.upsert"))
    assert upsert["db.collection.name"] == "authors"
    assert upsert["db.operation.name"] == "upsert"
    assert upsert["db.result.affected_rows"] == 1
    (raw,) = (attrs(s) for s in named(spans, "db.query.from_sql"))
    assert raw["db.collection.name"] == "authors"
    assert raw["db.result.count"] == 2


@pytest.mark.usefixtures("instrumented")
async def test_add_and_remove_open_no_load_span_and_awaiting_the_same_attribute_still_does(
    blog_engine: Engine, spans: InMemorySpanExporter, recwarn: pytest.WarningsRecorder
) -> None:
    await blog_engine.create_all(Shelf, Book, ShelfBook)
    async with Session(blog_engine) as session:
        session.add_all([Shelf(name="s"), Book(title="a"), Book(title="b")])
        await session.commit()
    spans.clear()
    async with Session(blog_engine) as session:
        shelf = await session.get(Shelf, 1)
        a, b = await session.get(Book, 1), await session.get(Book, 2)
        assert shelf is not None and a is not None and b is not None
        books = shelf.books
        books.add(a)  # the load started by the attribute read is dropped, never run
        shelf.books.add(b)
        shelf.books.remove(b)
        assert named(spans, "db.relationship.select") == []
        assert [book.title for book in await books] == ["a"]  # loads: flushed first, then read
        await session.commit()
    (lazy,) = (attrs(s) for s in named(spans, "db.relationship.select"))
    assert lazy["db.result.count"] == 1
    assert [w for w in recwarn if issubclass(w.category, RuntimeWarning)] == []
