"""Build hook: the wheel's sources live at ../../src in the repository.

From an sdist they sit inside the project (``src/...``), where the plain
``packages`` setting finds them; from the repository this hook adds them.
"""

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = "opentelemetry_instrumentation_data_bridge"


class SharedSourceHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        if (root / "src" / PACKAGE).is_dir():
            return
        source = root.parent.parent / "src" / PACKAGE
        if not source.is_dir():
            raise FileNotFoundError(f"cannot find the sources of {PACKAGE} at {source}")
        build_data["force_include"][str(source)] = PACKAGE
