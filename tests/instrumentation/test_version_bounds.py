"""Version bounds a contrib maintainer would merge (issue 21, finding 5): no ceiling on
OpenTelemetry (the newest tier tests the newest releases), and the ORM bounded below
its next major version, where the seams may change."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

from opentelemetry_instrumentation_data_bridge.package import _instruments

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "packaging" / "instrumentation" / "pyproject.toml"


def project() -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["project"]
    return table


def test_opentelemetry_requirements_have_floors_and_no_ceiling() -> None:
    requirements = [Requirement(r) for r in project()["dependencies"]]
    otel = [r for r in requirements if r.name.startswith("opentelemetry-")]
    assert {r.name for r in otel} >= {"opentelemetry-api", "opentelemetry-instrumentation"}
    for requirement in otel:
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">="}, str(requirement)
    # A release far beyond today's is allowed (the newest tier is what tests it).
    instrumentation = next(r for r in otel if r.name == "opentelemetry-instrumentation")
    assert instrumentation.specifier.contains(Version("0.99b0"), prereleases=True)


def test_the_orm_is_bounded_below_its_next_major_version() -> None:
    (instruments,) = _instruments
    requirement = Requirement(instruments)
    assert requirement.name == "data-bridge-core"
    assert requirement.specifier.contains(Version("0.1.0"))
    assert requirement.specifier.contains(Version("0.99.0"))
    assert not requirement.specifier.contains(Version("1.0.0"))
    extra = project()["optional-dependencies"]["instruments"]
    assert [Requirement(r).specifier for r in extra] == [requirement.specifier]


def test_ci_has_a_tier_on_the_newest_opentelemetry_releases() -> None:
    tiers = (ROOT / ".ci" / "run").read_text()
    assert "tier newest bash scripts/ci-newest.sh" in tiers
    script = (ROOT / "scripts" / "ci-newest.sh").read_text()
    assert "--upgrade" in script
    for package in ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-instrumentation"):
        assert package in script
