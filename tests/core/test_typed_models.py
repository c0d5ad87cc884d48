"""Models in the typed style (Mapped[...] / Rel[...]) map and behave like the plain style."""

from __future__ import annotations

from core_fixtures import DSN, User

from data_bridge_core import Column, Engine, Mapped, Rel, Session, Table, relationship, table_info


class Writer(Table):
    id: Mapped[int] = Column(primary_key=True)
    name: Mapped[str]
    nickname: Mapped[str | None] = Column(default=None)
    books: Rel[list[Book]] = relationship(back_populates="writer")

    class Settings:
        table_name = "typed_writers"


class Book(Table):
    id: Mapped[int] = Column(primary_key=True)
    writer_id: Mapped[int] = Column(foreign_key="typed_writers.id")
    title: Mapped[str]
    writer: Rel[Writer] = relationship(back_populates="books")

    class Settings:
        table_name = "typed_books"


def test_typed_annotations_map_to_the_same_columns_as_plain_ones() -> None:
    writer = table_info(Writer)
    assert writer.columns["name"].column_type is table_info(User).columns["name"].column_type
    assert writer.columns["name"].nullable is False
    assert writer.columns["nickname"].nullable is True
    assert Writer.books.uselist is True and Writer.books.target is Book
    assert Book.writer.direction == "many_to_one"


async def test_typed_models_round_trip_through_the_database(schema: str) -> None:
    engine = Engine(DSN, min_size=0, options=f"-c search_path={schema}")
    try:
        await engine.create_all(Writer, Book)
        async with Session(engine) as session:
            ann = Writer(name="Ann")
            session.add(Book(title="One", writer=ann))
            await session.commit()
            found = await session.find(Book).filter(Book.writer.has(Writer.name == "Ann")).first()
            assert found is not None
            assert (await found.writer).name == "Ann"
            assert [b.title for b in await ann.books] == ["One"]
    finally:
        await engine.dispose()
