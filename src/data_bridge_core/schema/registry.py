"""Where model classes are found by name, for forward references.

A relationship annotated ``list[Post]`` names its target before ``Post``
exists. The name is resolved against the models of the same module and
enclosing scope (so models declared inside a function find each other), the
most recently declared winning, then against the module's own names (a model
imported there, as Python would resolve it), the module's models, and every
model of that name.
"""

from __future__ import annotations

import sys
import weakref
from typing import TYPE_CHECKING

from data_bridge_core.errors import RelationshipError

if TYPE_CHECKING:
    from data_bridge_core.schema.table import Table

_by_name: dict[str, list[weakref.ref[type[Table]]]] = {}


def register(model: type[Table]) -> None:
    _by_name.setdefault(model.__name__, []).append(weakref.ref(model))


def _scope(model: type) -> tuple[str, str]:
    return model.__module__, model.__qualname__.rpartition(".")[0]


def lookup(name: str, near: type) -> type[Table]:
    """The model called ``name`` as seen from the model ``near``."""
    candidates = [c for ref in _by_name.get(name, ()) if (c := ref()) is not None]
    if not candidates:
        raise RelationshipError(
            f"{near.__name__}: no model named {name!r} is defined (yet); "
            "relationships resolve when they are first used"
        )
    same_scope = [c for c in candidates if _scope(c) == _scope(near)]
    if same_scope:
        return same_scope[-1]
    module = sys.modules.get(near.__module__)
    imported = getattr(module, name, None) if module is not None else None
    if imported is not None and any(imported is c for c in candidates):
        return imported  # type: ignore[no-any-return]
    same_module = [c for c in candidates if c.__module__ == near.__module__]
    return (same_module or candidates)[-1]


def models_near(near: type) -> list[type[Table]]:
    """The models declared in the scope of ``near`` (else its module), for error hints."""
    models = [c for refs in _by_name.values() for ref in refs if (c := ref()) is not None]
    same_scope = [c for c in models if _scope(c) == _scope(near)]
    return same_scope or [c for c in models if c.__module__ == near.__module__]


def scoped_models(near: type) -> list[list[type[Table]]]:
    """Every model, in groups to search in turn: ``near``'s scope, its module, all."""
    models = [c for refs in _by_name.values() for ref in refs if (c := ref()) is not None]
    return [
        [c for c in models if _scope(c) == _scope(near)],
        [c for c in models if c.__module__ == near.__module__],
        models,
    ]
