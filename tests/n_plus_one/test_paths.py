"""Warnings and query sites name files relative to the working directory (absolute outside it)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest
from instrumentation_models import Author

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.telemetry import (
    NPlusOneWarning,
    configure_n1_detection,
    n1_scope,
)

pytestmark = pytest.mark.usefixtures("instrumented")
HERE = Path(__file__).resolve()
LINES: dict[str, int] = {}


async def articles_of_every_author(engine: Engine) -> None:
    async with Session(engine) as session:
        LINES["query"] = sys._getframe().f_lineno + 1
        authors = await session.find(Author).to_list()
        for author in authors:
            LINES["load"] = sys._getframe().f_lineno + 1
            await author.articles


async def test_a_file_under_the_working_directory_is_named_relative_to_it(
    blog_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(HERE.parents[2])  # the repository: tests/n_plus_one/test_paths.py
    configure_n1_detection(threshold=3, mode="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with n1_scope() as scope:
            await articles_of_every_author(blog_engine)
    [finding] = scope.findings
    relative = os.path.join("tests", "n_plus_one", "test_paths.py")
    assert str(finding.site) == f"{relative}:{LINES['load']} (articles_of_every_author)"
    assert str(finding.query_site) == f"{relative}:{LINES['query']} (articles_of_every_author)"
    [warning] = [w for w in caught if issubclass(w.category, NPlusOneWarning)]
    assert str(warning.message) == (
        f"N+1 query: Author.articles lazy-loaded 3 times at {relative}:{LINES['load']} "
        "(articles_of_every_author). Use selectinload(Author.articles) in the .options(...) "
        f"of the query at {relative}:{LINES['query']} (articles_of_every_author)"
    )
    assert str(HERE) not in str(warning.message)
    # The attribute keeps the absolute path (semantic conventions: as unique as possible).
    assert finding.site.attributes()["code.file.path"] == str(HERE)


async def test_a_file_outside_the_working_directory_keeps_its_absolute_path(
    blog_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with n1_scope() as scope:
        await articles_of_every_author(blog_engine)
    [finding] = scope.findings
    assert str(finding.site) == f"{HERE}:{LINES['load']} (articles_of_every_author)"
    assert f"at {HERE}:{LINES['load']}" in finding.message()
