"""Column selections are typed: ``select(User.id, User.name)`` rows are ``tuple[int, str]``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _mypy(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` over ``source`` written as ``<name>.py``, against this tree's src."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "c"), str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},
        cwd=tmp_path,
        check=False,
    )


SELECTIONS = """
from __future__ import annotations
from datetime import datetime
from data_bridge_core import Column, Mapped, Rel, Session, Table, func, relationship


class Author(Table):
    id: Mapped[int] = Column(primary_key=True)
    name: Mapped[str]
    bio: Mapped[str | None] = Column(default=None)
    books: Rel[list[Book]] = relationship(back_populates="author")


class Book(Table):
    id: Mapped[int] = Column(primary_key=True)
    author_id: Mapped[int] = Column(foreign_key="author.id")
    pages: Mapped[int]
    published: Mapped[datetime]
    author: Rel[Author] = relationship(back_populates="books")


async def rows(session: Session) -> None:
    pairs = await session.find(Author).select(Author.id, Author.bio).to_list()
    reveal_type(pairs)
    counted = await (
        session.find(Author).join(Author.books)
        .select(Author.name, func.count(), func.sum(Book.pages), func.max(Book.published))
        .group_by(Author.id).first()
    )
    reveal_type(counted)
    reveal_type(await session.find(Book).select(Book.pages.named("n")).to_list())
    for author_id, bio in pairs:
        print(author_id + 1, bio.upper())
"""


def test_selected_rows_are_typed_from_the_mapped_columns_and_functions(tmp_path: Path) -> None:
    result = _mypy(tmp_path, "selections", SELECTIONS)
    lines = result.stdout.splitlines()
    # mypy before 1.20 writes builtins' names in full ("builtins.int")
    revealed = [
        line.split("Revealed type is ")[1].replace("builtins.", "")
        for line in lines
        if "Revealed" in line
    ]
    assert revealed == [
        '"list[tuple[int, str | None]]"',
        '"tuple[str, int, int | None, datetime.datetime | None] | None"',
        '"list[tuple[int]]"',
    ]
    # the one error: bio may be None
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 1 and 'Item "None" of "str | None" has no attribute "upper"' in errors[0]


COMPARISONS = """
from __future__ import annotations
from datetime import datetime
from data_bridge_core import Column, Mapped, Session, Table


class Item(Table):
    id: Mapped[int] = Column(primary_key=True)
    slug: Mapped[str]
    at: Mapped[datetime]
    note: Mapped[str | None] = Column(default=None)


async def queries(session: Session) -> None:
    session.find(Item).filter(Item.slug == 5)
    session.find(Item).filter(Item.id != "1")
    session.find(Item).filter(Item.at > 3)
    session.find(Item).filter(Item.id.in_(["a"]))
    session.find(Item).filter(
        Item.slug == "x", Item.note == None, Item.id > 3, Item.id == Item.id + 1,
        Item.id.in_([1, 2]), Item.id.in_(session.find(Item).select(Item.id)),
        Item.id.between(1, 2),
    )
"""


def test_a_comparison_with_a_value_of_another_type_is_a_type_error(tmp_path: Path) -> None:
    result = _mypy(tmp_path, "comparisons", COMPARISONS)
    errors = [
        line.split(": error: ")[1] for line in result.stdout.splitlines() if ": error: " in line
    ]
    assert errors == [
        'Argument 1 to "filter" of "Query" has incompatible type "WrongTypeComparison"; '
        'expected "Expression[Item] | bool"  [arg-type]',
        'Argument 1 to "filter" of "Query" has incompatible type "WrongTypeComparison"; '
        'expected "Expression[Item] | bool"  [arg-type]',
        'Unsupported operand types for > ("MappedColumn[Item, datetime]" and "int")  [operator]',
        'List item 0 has incompatible type "str"; expected "int"  [list-item]',
    ]


JOINS = """
from __future__ import annotations
from data_bridge_core import Column, Mapped, Query, Rel, Session, Table, relationship


class Author(Table):
    id: Mapped[int] = Column(primary_key=True)
    name: Mapped[str]
    active: Mapped[bool]
    books: Rel[list[Book]] = relationship(back_populates="author")


class Book(Table):
    id: Mapped[int] = Column(primary_key=True)
    author_id: Mapped[int] = Column(foreign_key="author.id")
    title: Mapped[str]
    author: Rel[Author] = relationship(back_populates="books")


class Tag(Table):
    id: Mapped[int] = Column(primary_key=True)
    name: Mapped[str]


def queries(session: Session) -> None:
    session.find(Book).filter(Author.name == "x")
    session.find(Book).join(Book.author).filter(Author.name == "x", Book.title == "t")
    session.find(Book).join(Book.author, outer=True).filter(Author.name.like("x%"))
    session.find(Book).join(Book.author).filter(Tag.name == "x")
    session.find(Book).filter(Book.author.has(Author.name == "x"))
    session.find(Book).filter(Book.author.has(Tag.name == "x"))
    session.find(Author).filter(Author.books.any(Book.title == "x"))
    session.find(Book).select(Book.id).filter(Author.name == "x")
    session.find(Book).join(Book.author).select(Book.id, Author.name).filter(Author.active == True)
    q: Query[Book] = session.find(Book)
    joined = q.join(Book.author).order_by(Author.name).limit(5)
    joined.filter(Author.name == "x")
    reveal_type(joined)
"""


def test_filtering_by_a_model_that_is_not_joined_is_a_type_error(tmp_path: Path) -> None:
    result = _mypy(tmp_path, "joins", JOINS)
    lines = result.stdout.splitlines()
    errors = [
        (line.split(":")[1], line.split(": error: ")[1]) for line in lines if ": error: " in line
    ]
    # line numbers in JOINS: 26 no join, 29 Tag never joined, 31 has() of the wrong model,
    # 33 a selection of Book without the join
    assert errors == [
        (
            "26",
            'Argument 1 to "filter" of "Query" has incompatible type "Expression[Author]"; '
            'expected "Expression[Book] | bool"  [arg-type]',
        ),
        (
            "29",
            'Argument 1 to "filter" of "Query" has incompatible type "Expression[Tag]"; '
            'expected "Expression[Book | Author] | bool"  [arg-type]',
        ),
        (
            "31",
            'Argument 1 to "has" of "Relationship" has incompatible type "Expression[Tag]"; '
            'expected "Expression[Author] | bool"  [arg-type]',
        ),
        (
            "33",
            'Argument 1 to "filter" of "RowQuery" has incompatible type "Expression[Author]"; '
            'expected "Expression[Book] | bool"  [arg-type]',
        ),
    ], result.stdout
    revealed = [line.split("Revealed type is ")[1] for line in lines if "Revealed" in line]
    assert revealed == ['"data_bridge_core.query.Query[joins.Book, joins.Book | joins.Author]"']
