"""The demo's and the example's migrations build exactly what their models declare."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from catalog_snapshot import snapshot

from data_bridge_core import Engine, Table
from data_bridge_core.migrations import Migrator

ROOT = Path(__file__).resolve().parents[2]


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # models resolve their annotations through their module
    spec.loader.exec_module(module)
    return module


def demo_models() -> list[type[Table]]:
    return list(_module(ROOT / "demo" / "models.py", "shipped_demo_models").MODELS)


def example_models() -> list[type[Table]]:
    module = _module(ROOT / "examples" / "fastapi_pydantic_app.py", "shipped_example_app")
    return [module.Author, module.Article]


@pytest.mark.parametrize(
    ("directory", "models"),
    [
        (ROOT / "demo" / "migrations", demo_models),
        (ROOT / "examples" / "migrations" / "fastapi_pydantic_app", example_models),
    ],
    ids=["demo", "fastapi_pydantic_app"],
)
async def test_shipped_migrations_apply_match_their_models_and_unapply(
    migration_engine: Engine, schema: str, directory: Path, models: object
) -> None:
    assert callable(models)
    steps = await Migrator(migration_engine, directory).migrate()
    assert [str(s) for s in steps] == ["0001_initial (upgrade)"]
    result = await Migrator(migration_engine, directory).check(models())
    assert result.clean, [o.describe() for o in result.operations]
    await Migrator(migration_engine, directory).migrate(to="zero")
    assert (await snapshot(schema))["tables"] == []
