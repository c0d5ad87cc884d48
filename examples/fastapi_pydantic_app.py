"""A FastAPI service returning data_bridge_core models through pydantic response models.

The pattern (docs/usage.md, "FastAPI and pydantic"):

- one `Session` per request, from a dependency that opens it and closes it
  when the response is done (uncommitted work is rolled back);
- endpoints load what the response needs with loader options
  (`selectinload`), and hand `loaded(obj)` to pydantic: relationships read as
  their loaded values, and a relationship that was not loaded raises instead
  of querying while serializing.

    pip install uvicorn && python examples/fastapi_pydantic_app.py

against ``DATA_BRIDGE_DSN``, else a throwaway embedded PostgreSQL (examples/example_database.py).
At startup it applies its migrations (examples/migrations/fastapi_pydantic_app).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from data_bridge_core import (
    Column,
    Engine,
    Mapped,
    Rel,
    Session,
    Table,
    loaded,
    relationship,
    selectinload,
)

# Generated with `data-bridge makemigrations --models fastapi_pydantic_app
# --dir migrations/fastapi_pydantic_app` (docs/migrations.md); applied at startup.
MIGRATIONS = Path(__file__).resolve().parent / "migrations" / "fastapi_pydantic_app"


class Author(Table):
    id: Mapped[int] = Column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str] = Column(unique=True)
    articles: Rel[list[Article]] = relationship(back_populates="author")

    class Settings:
        table_name = "api_authors"


class Article(Table):
    id: Mapped[int] = Column(primary_key=True)
    author_id: Mapped[int] = Column(foreign_key="api_authors.id")
    title: Mapped[str]
    views: Mapped[int] = Column(default=0)
    author: Rel[Author] = relationship(back_populates="articles")

    class Settings:
        table_name = "api_articles"


# -- response models: from_attributes reads the model's attributes ---------------


class AuthorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str


class ArticleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    views: int
    author: AuthorOut  # a loaded many-to-one


class AuthorWithArticles(AuthorOut):
    articles: list[ArticleSummary]  # a loaded one-to-many


class ArticleSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str


AuthorWithArticles.model_rebuild()


class ArticleIn(BaseModel):
    author_email: str
    author_name: str
    title: str


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request; leaving the block rolls back anything uncommitted."""
    async with Session(request.app.state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def create_app(engine: Engine) -> FastAPI:
    """The application on an engine the caller owns (tests pass their own)."""
    app = FastAPI()
    app.state.engine = engine

    @app.post("/articles", response_model=ArticleOut, status_code=201)
    async def create_article(body: ArticleIn, session: SessionDep) -> ArticleOut:
        author = Author(name=body.author_name, email=body.author_email)
        await session.upsert([author], on=("email",), update=("name",))  # author.id is set
        article = Article(title=body.title, author=author)  # author: assigned, so loaded
        session.add(article)
        await session.commit()
        return ArticleOut.model_validate(loaded(article))

    @app.get("/articles", response_model=list[ArticleOut])
    async def list_articles(session: SessionDep, min_views: int = 0) -> list[ArticleOut]:
        articles = (
            await session.find(Article)
            .filter(Article.views >= min_views)
            .join(Article.author)
            .order_by(Author.name.asc(), Article.id.asc())
            .options(selectinload(Article.author))
            .to_list()
        )
        return [ArticleOut.model_validate(a) for a in loaded(articles)]

    @app.get("/authors/{author_id}", response_model=AuthorWithArticles)
    async def get_author(author_id: int, session: SessionDep) -> AuthorWithArticles:
        author = (
            await session.find(Author)
            .filter(Author.id == author_id)
            .options(selectinload(Author.articles))
            .first()
        )
        if author is None:
            raise HTTPException(status_code=404, detail="no such author")
        return AuthorWithArticles.model_validate(loaded(author))

    @app.post("/articles/{article_id}/view", response_model=ArticleOut)
    async def view_article(article_id: int, session: SessionDep) -> ArticleOut:
        changed = (
            await session.find(Article)
            .filter(Article.id == article_id)
            .update(views=Article.views + 1)
        )
        if not changed:
            raise HTTPException(status_code=404, detail="no such article")
        await session.commit()
        article = (
            await session.find(Article)
            .filter(Article.id == article_id)
            .options(selectinload(Article.author))
            .first()
        )
        return ArticleOut.model_validate(loaded(article))

    return app


def main(dsn: str) -> None:  # pragma: no cover - manual run
    import uvicorn

    engine = Engine(dsn)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await engine.migrate(MIGRATIONS)  # the tables, as the shipped migrations build them
        yield
        await engine.dispose()

    app = create_app(engine)
    app.router.lifespan_context = lifespan
    uvicorn.run(app)


if __name__ == "__main__":
    from example_database import example_database  # DATA_BRIDGE_DSN, else an embedded server

    with example_database() as dsn:
        main(dsn)
