"""Print a pip constraints file pinning every declared minimum exactly.

Reads the ``>=`` floors of both distributions (dependencies and every extra)
from ``pyproject.toml`` and ``packaging/instrumentation/pyproject.toml``, so
the floors tier of ``.ci/run`` installs exactly what the metadata promises
to work with. A package floored in several places gets its highest floor.

    python scripts/floor_constraints.py            # print the constraints
    python scripts/floor_constraints.py --verify   # check this interpreter has them exactly
    python scripts/floor_constraints.py --extra pytest   # only one extra's floors (the
                                                         # plugin's oldest pytest)
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECTS = (ROOT / "pyproject.toml", ROOT / "packaging" / "instrumentation" / "pyproject.toml")
# "name[extra,...] spec, spec ; marker" -> name and the specifier part
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")
# Distributions of this repository: installed from the working tree, never pinned.
OWN = {"data-bridge-core", "opentelemetry-instrumentation-data-bridge"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Enough ordering for floors like 1.41, 0.62b0, 3.2: numbers first, then tags."""
    parts = re.findall(r"\d+|[a-z]+", version.lower())
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in parts)


def floors(only_extra: str | None = None) -> dict[str, str]:
    """Every floor, or (``only_extra``) the floors of that extra of either pyproject."""
    found: dict[str, str] = {}
    for path in PYPROJECTS:
        project = tomllib.loads(path.read_text())["project"]
        extras = project.get("optional-dependencies", {})
        if only_extra is not None:
            requirements = list(extras.get(only_extra, []))
        else:
            requirements = list(project.get("dependencies", []))
            for extra in extras.values():
                requirements += extra
        for requirement in requirements:
            match = REQUIREMENT.match(requirement)
            if match is None:
                raise SystemExit(f"{path}: cannot read the requirement {requirement!r}")
            name = _normalize(match.group(1))
            if name in OWN:
                continue
            for spec in match.group(2).split(","):
                spec = spec.strip()
                if spec.startswith(">="):
                    version = spec[2:].strip()
                    if name not in found or _version_key(version) > _version_key(found[name]):
                        found[name] = version
    return found


def _exact(version: str) -> str:
    """3.2 -> 3.2.0: pip otherwise lets ``==3.2`` pick a development release of 3.2.0."""
    parts = version.split(".")
    if all(part.isdigit() for part in parts):
        parts += ["0"] * (3 - len(parts))
    return ".".join(parts)


def verify() -> int:
    """Every floored package that is installed has exactly its floor; returns the count."""
    checked = 0
    wrong = []
    for name, version in sorted(floors().items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an extra the tier does not install (phoenix)
        checked += 1
        if _version_key(installed) != _version_key(_exact(version)):
            wrong.append(f"{name}: floor {version}, installed {installed}")
    if wrong:
        raise SystemExit("not installed at their declared floors:\n  " + "\n  ".join(wrong))
    return checked


def main() -> None:
    if sys.argv[1:] == ["--verify"]:
        sys.stdout.write(f"{verify()} packages installed exactly at their declared floors\n")
        return
    only_extra = sys.argv[2] if sys.argv[1:2] == ["--extra"] and len(sys.argv) == 3 else None
    if sys.argv[1:] and only_extra is None:
        raise SystemExit(__doc__)
    for name, version in sorted(floors(only_extra).items()):
        sys.stdout.write(f"{name}=={_exact(version)}\n")


if __name__ == "__main__":
    main()
