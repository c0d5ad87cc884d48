"""The seams of docs/extension-points.md: present, async, and each operation seen once."""

from __future__ import annotations

import inspect as pyinspect
import os
import socket
import subprocess
import sys
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from core_fixtures import Post, User, seed

from data_bridge_core import (
    EagerBatch,
    EagerLoad,
    Engine,
    Query,
    Relationship,
    Session,
    selectinload,
)

SEAMS = {
    Query: ["to_list", "count", "exists", "aggregate", "update", "delete"],
    Session: [
        "open",
        "close",
        "flush",
        "commit",
        "rollback",
        "upsert",
        "from_sql",
        "execute",
        "run_statement",
        "refresh",
        "savepoint",
        "release_savepoint",
        "rollback_to_savepoint",
    ],
    Relationship: ["load"],
    EagerLoad: ["load"],
}
ROOT = Path(__file__).resolve().parents[2]


def test_every_seam_is_a_coroutine_method() -> None:
    for cls, names in SEAMS.items():
        for name in names:
            assert pyinspect.iscoroutinefunction(cls.__dict__[name]), f"{cls.__name__}.{name}"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    seen: Counter[str] = Counter()
    details: list[Any] = []
    for cls, names in SEAMS.items():
        for name in names:
            original = cls.__dict__[name]

            def make(original: Any, key: str) -> Any:
                async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
                    seen[key] += 1
                    if key == "EagerLoad.load":
                        batch: EagerBatch = args[0]
                        details.append((self.relationship.name, batch.depth, batch.batch_count))
                    if key == "Query.to_list":
                        details.append(("limit", self.limit_value))
                    return await original(self, *args, **kwargs)

                return counting

            monkeypatch.setattr(cls, name, make(original, f"{cls.__name__}.{name}"))
    seen.details = details  # type: ignore[attr-defined]
    return seen


async def test_derived_operations_go_through_their_seam_once(
    engine: Engine, calls: Counter[str]
) -> None:
    await seed(engine, users=2, posts=2, comments=1)
    calls.clear()
    calls.details.clear()  # type: ignore[attr-defined]
    async with Session(engine) as session:
        await session.find(User).first()
        assert calls["Query.to_list"] == 1
        assert calls.details[-1] == ("limit", 1)  # type: ignore[attr-defined]
        await session.get(User, 2)  # miss: one to_list
        await session.get(User, 2)  # hit: none
        assert calls["Query.to_list"] == 2
        user = await session.get(User, 1)
        assert user is not None
        user.age = 5
        await session.commit()
        assert calls["Session.flush"] == 1
        assert calls["Session.commit"] == 1
        calls.details.clear()  # type: ignore[attr-defined]
        await (
            session.find(User)
            .options(selectinload(User.posts).options(selectinload(Post.comments)))
            .to_list()
        )
        assert calls["EagerLoad.load"] == 2
        assert [d for d in calls.details if d[0] != "limit"] == [  # type: ignore[attr-defined]
            ("posts", 0, 2),
            ("comments", 1, 4),
        ]
    assert calls["Session.open"] == 1
    assert calls["Session.close"] == 1


async def test_refresh_and_savepoints_go_through_their_seams_once(
    engine: Engine, calls: Counter[str]
) -> None:
    await seed(engine, users=1, posts=0, comments=0)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None
        calls.clear()
        await session.refresh(user)
        assert calls["Session.refresh"] == 1
        async with session.begin_nested():
            user.age = 41
        assert (calls["Session.savepoint"], calls["Session.release_savepoint"]) == (1, 1)
        assert calls["Session.rollback_to_savepoint"] == 0

        async def failing_block() -> None:
            async with session.begin_nested():
                user.age = 42
                raise LookupError("the block fails")

        with pytest.raises(LookupError):
            await failing_block()
        assert (calls["Session.savepoint"], calls["Session.release_savepoint"]) == (2, 1)
        assert calls["Session.rollback_to_savepoint"] == 1
        assert user.age == 41
        await session.rollback()


def test_the_core_imports_no_tracing_code() -> None:
    code = (
        "import sys, data_bridge_core; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'wrapt')]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr


def _index_unreachable() -> str | None:
    """Why pip's package index cannot be reached from here, or None when it can."""
    url = os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return None if Path(parts.path).is_dir() else f"{url} is not a directory"
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        return f"{parts.scheme}://{host}:{port}: {exc.strerror or exc}"
    return None


def test_installing_the_core_alone_pulls_no_opentelemetry(tmp_path: Path) -> None:
    import json

    report = tmp_path / "report.json"
    unreachable = _index_unreachable()
    # Offline, pip may still resolve from local wheels (find-links); retrying an index that
    # cannot answer would only add minutes.
    retries = ["--retries", "0", "--timeout", "5"] if unreachable else []
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            *retries,
            "--report",
            str(report),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if run.returncode != 0 and unreachable:
        pytest.skip(f"needs the package index, which cannot be reached ({unreachable})")
    assert run.returncode == 0, run.stderr
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert "data-bridge-core" in names
    assert "psycopg" in names
    assert not {n for n in names if n.startswith("opentelemetry") or n == "wrapt"}
