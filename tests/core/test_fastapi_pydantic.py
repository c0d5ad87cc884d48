"""The FastAPI/pydantic example: a session per request, models returned through response models."""

from __future__ import annotations

import httpx
import pytest
from core_fixtures import DSN, StatementLog
from pydantic import BaseModel, ConfigDict, ValidationError

from data_bridge_core import Engine, RelationshipError, Session, loaded
from example_files import load_example

example = load_example("fastapi_pydantic_app")
Article, Author, create_app = example.Article, example.Author, example.create_app


async def test_the_example_app_serves_models_with_loaded_relationships(
    schema: str, sql: StatementLog
) -> None:
    engine = Engine(DSN, min_size=0, options=f"-c search_path={schema}")
    await engine.create_all(Author, Article)
    try:
        transport = httpx.ASGITransport(app=create_app(engine))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for title, name in (("Hi", "Ann"), ("Yo", "Bob"), ("Re", "Ann")):
                created = await client.post(
                    "/articles",
                    json={"author_email": f"{name}@x.org", "author_name": name, "title": title},
                )
                assert created.status_code == 201, created.text
            assert created.json() == {
                "id": 3,
                "title": "Re",
                "views": 0,
                "author": {"id": 1, "name": "Ann"},
            }
            viewed = await client.post("/articles/2/view")
            assert viewed.json()["views"] == 1
            sql.clear()
            listed = await client.get("/articles")
            assert [(a["title"], a["author"]["name"]) for a in listed.json()] == [
                ("Hi", "Ann"),
                ("Re", "Ann"),
                ("Yo", "Bob"),
            ]
            assert len(sql.statements) == 2  # the list, then its authors: none while serializing
            popular = await client.get("/articles", params={"min_views": 1})
            assert [a["title"] for a in popular.json()] == ["Yo"]
            author = await client.get("/authors/1")
            assert author.json() == {
                "id": 1,
                "name": "Ann",
                "articles": [{"id": 1, "title": "Hi"}, {"id": 3, "title": "Re"}],
            }
            assert (await client.get("/authors/99")).status_code == 404
    finally:
        await engine.dispose()


class AuthorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    articles: list[dict[str, object]]


async def test_serializing_a_relationship_that_was_not_loaded_names_the_option(
    schema: str,
) -> None:
    engine = Engine(DSN, min_size=0, options=f"-c search_path={schema}")
    await engine.create_all(Author, Article)
    try:
        async with Session(engine) as session:
            session.add(Author(name="Ann", email="a@x.org"))
            await session.commit()
        async with Session(engine) as session:
            ann = await session.find(Author).first()
            assert ann is not None
            # pydantic reports the view's RelationshipError inside its ValidationError
            with pytest.raises(ValidationError, match=r"selectinload\(Author.articles\)"):
                AuthorOut.model_validate(loaded(ann))
            with pytest.raises(RelationshipError, match=r"is not loaded"):
                _ = loaded(ann).articles
            assert await ann.articles == []
            assert AuthorOut.model_validate(loaded(ann)).articles == []
    finally:
        await engine.dispose()
