"""The package uses no private OpenTelemetry name (issue 21, finding 4): it declares
version ranges, and a patch release may remove anything whose name starts with ``_``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import opentelemetry_instrumentation_data_bridge

PACKAGE = Path(opentelemetry_instrumentation_data_bridge.__file__).parent
OURS = "opentelemetry_instrumentation_data_bridge"


def _private(dotted: str) -> bool:
    return any(part.startswith("_") for part in dotted.split("."))


def private_uses(source: str) -> list[str]:
    """Imports of a private OpenTelemetry module or name, dotted private paths in
    code, and ``getattr`` of a private attribute by name (of anything but ``self``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if module.startswith("opentelemetry") and not module.startswith(OURS):
                found += [f"from {module} import {a.name}" for a in node.names if _private(a.name)]
                if _private(module):
                    found.append(f"from {module} import ...")
        elif isinstance(node, ast.Import):
            found += [
                f"import {a.name}"
                for a in node.names
                if a.name.startswith("opentelemetry.") and _private(a.name)
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and not (isinstance(node.args[0], ast.Name) and node.args[0].id == "self")
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and re.match(r"_[a-z]", node.args[1].value)
        ):
            found.append(f"{node.func.id}(..., {node.args[1].value!r})")
    found += re.findall(r"\bopentelemetry(?:\.\w+)*\._\w+", source)
    return found


def test_the_checker_finds_each_kind_of_private_use() -> None:
    source = (
        "from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY\n"
        "from opentelemetry.instrumentation._semconv import x\n"
        "import opentelemetry.metrics._internal\n"
        "getattr(provider, '_active_span_processor', None)\n"
    )
    assert len(private_uses(source)) >= 4


def test_no_module_of_the_package_uses_a_private_opentelemetry_name() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if (uses := private_uses(path.read_text()))
    }
    assert offenders == {}
