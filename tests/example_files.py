"""The examples' modules for the tests, loaded from their files.

examples/ is not a package on sys.path: a newcomer runs each example as a script
(``python examples/realworld_queries.py``), so a test loads the file instead.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """examples/<name>.py as the module ``name``, loaded once for the whole run.

    Once: every test module that uses an example's models gets the same classes.
    """
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the models' string annotations resolve through it
    spec.loader.exec_module(module)
    return module
