"""docs/usage.md's relational-query examples run against the server, as written.

The page's blocks become one module (as for the type check, see
test_examples_typecheck.py); its models get tables in the test's schema, a few
rows, and each example that uses a relational query form runs in a session.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from core_fixtures import DSN
from test_examples_typecheck import example_module

from data_bridge_core import Engine, Session, Table

ROOT = Path(__file__).resolve().parents[2]
# The examples run here: those using column selection, grouping, outer and
# list joins, subqueries, and self-referential many-to-many relationships.
MARKERS = (
    ".select(",
    ".group_by(",
    "outer=True",
    "exists(",
    "Member.following",
    "Story.comment_count",
)


def _load(tmp_path: Path) -> ModuleType:
    path = tmp_path / "usage_examples.py"
    path.write_text(example_module((ROOT / "docs" / "usage.md").read_text()))
    spec = importlib.util.spec_from_file_location("usage_examples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered: the models' string annotations resolve in their module's namespace.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _examples(module: ModuleType, source: str) -> list[str]:
    found = []
    for name, body in re.findall(r"async def (_example_\d+)\(.*?\n((?:    .*\n|\n)*)", source):
        if any(marker in body for marker in MARKERS):
            found.append(name)
    return found


async def test_the_relational_query_examples_of_usage_md_run(
    schema: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    module = _load(tmp_path)
    m: Any = module
    request.addfinalizer(lambda: sys.modules.pop("usage_examples", None))
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    try:
        models = [
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, Table) and value is not Table
        ]
        await engine.create_all(*models)
        async with Session(engine) as session:
            ann = m.User(name="Ann", email="ann@x.org")
            post = m.Post(title="Hello", author=ann, views=3)
            python = m.Tag(name="python")
            article = m.Article(title="Hi", author=ann, tags=[python])
            session.add_all([post, article])
            await session.commit()
        names = _examples(module, (tmp_path / "usage_examples.py").read_text())
        assert len(names) >= 6
        for name in names:
            async with Session(engine) as session:
                user = await session.get(m.User, ann.id)
                await getattr(module, name)(
                    engine=engine,
                    session=session,
                    user=user,
                    post=await session.get(m.Post, post.id),
                    article=await session.get(m.Article, article.id),
                    python=await session.get(m.Tag, python.id),
                )
                await session.rollback()
    finally:
        await engine.dispose()
